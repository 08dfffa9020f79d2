"""In-context regression tasks, sampled in batches with ``jax.vmap``.

Token layout of von Oswald et al. (2023), Sec. 2: a task draws weights
``W: (d_y, d_x)`` and ``n_context`` context points; every context point becomes
one token ``e_i = (x_i, y_i)`` with ``y_i = W x_i``, and the query token is
``e_q = (x_q, 0)``. A batch of tasks is returned as

* ``tokens: (batch, n_context + 1, d_x + d_y)`` (query last),
* ``targets: (batch, d_y)`` (``y_q = W x_q``),
* ``w: (batch, d_y, d_x)`` (the true weights).

Inputs have i.i.d. coordinates ``x ~ U(-input_range/2, input_range/2)``: the
authors' code uses ``input_range = 1`` (``U(-0.5, 0.5)``) while the paper's text
states ``U(-1, 1)`` (``input_range = 2``); every loss differs by a factor 4.
Weights are ``W ~ N(0, target_scale**2 I)``, so ``target_scale`` scales every
target.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxpapers._validate import positive_int as _pos_int

OOD_FAMILIES = ("input_range", "target_scale")


def _pos_float(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite positive number, got {v!r}")


def _one_linear(key, n_context, d_x, d_y, input_range, target_scale, noise):
    kw, kx, kn = jax.random.split(key, 3)
    w = target_scale * jax.random.normal(kw, (d_y, d_x), jnp.float32)
    half = input_range / 2
    x = jax.random.uniform(kx, (n_context + 1, d_x), jnp.float32, minval=-half, maxval=half)
    y = x @ w.T
    if noise > 0:
        y = y.at[:n_context].add(noise * jax.random.normal(kn, (n_context, d_y), jnp.float32))
    target = y[n_context]
    y = y.at[n_context].set(0.0)
    return jnp.concatenate([x, y], axis=1), target, w


def sample_linear(key: jax.Array, batch: int, *, n_context: int = 10, d_x: int = 10, d_y: int = 1,
                  input_range: float = 1.0, target_scale: float = 1.0, noise: float = 0.0):
    """Sample ``batch`` linear regression tasks.

    Args:
        key: PRNG key.
        batch: number of tasks.
        n_context: context points ``N`` per task.
        d_x, d_y: input and output sizes.
        input_range: width of the uniform input box, ``x ~ U(-r/2, r/2)^{d_x}``.
        target_scale: standard deviation of the entries of ``W``.
        noise: standard deviation of label noise added to the *context* targets.

    Returns:
        ``(tokens, targets, w)`` of shapes ``(batch, N + 1, d_x + d_y)``,
        ``(batch, d_y)``, ``(batch, d_y, d_x)``; float32.
    """
    for name, v in (("batch", batch), ("n_context", n_context), ("d_x", d_x), ("d_y", d_y)):
        _pos_int(name, v)
    _pos_float("input_range", input_range)
    _pos_float("target_scale", target_scale)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite non-negative number, got {noise!r}")
    keys = jax.random.split(key, batch)
    one = lambda k: _one_linear(k, n_context, d_x, d_y, float(input_range), float(target_scale), float(noise))
    return jax.vmap(one)(keys)


def sample_ood(key: jax.Array, batch: int, family: str, alpha: float, *, input_range: float = 1.0,
               target_scale: float = 1.0, **kwargs):
    """Out-of-distribution tasks: one factor ``alpha`` applied to the training distribution.

    ``family="input_range"`` widens the input box (``input_range * alpha``);
    ``family="target_scale"`` scales the weights (``target_scale * alpha``).
    ``alpha = 1`` is the training distribution. Other keywords go to
    :func:`sample_linear`.
    """
    if family not in OOD_FAMILIES:
        raise ValueError(f"family must be one of {OOD_FAMILIES}, got {family!r}")
    _pos_float("alpha", alpha)
    if family == "input_range":
        input_range = input_range * alpha
    else:
        target_scale = target_scale * alpha
    return sample_linear(key, batch, input_range=input_range, target_scale=target_scale, **kwargs)


def _one_sine(key, n_context, amplitude, phase, x_range):
    ka, kp, kx = jax.random.split(key, 3)
    a = jax.random.uniform(ka, (), jnp.float32, *amplitude)
    p = jax.random.uniform(kp, (), jnp.float32, *phase)
    x = jax.random.uniform(kx, (n_context + 1,), jnp.float32, *x_range)
    y = a * jnp.sin(x + p)
    tokens = jnp.stack([x, y.at[n_context].set(0.0)], axis=1)
    return tokens, y[n_context:], jnp.stack([a, p])


def sample_sine(key: jax.Array, batch: int, *, n_context: int = 10, amplitude=(0.1, 0.5),
                phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
    """Sine regression tasks ``y = a sin(x + p)`` (the paper's non-linear regression).

    Returns:
        ``(tokens, targets, ap)``: ``(batch, N + 1, 2)`` tokens ``(x, y)`` with
        the query's ``y`` set to 0, ``(batch, 1)`` targets, and ``(batch, 2)``
        the amplitude and phase of each task.
    """
    _pos_int("batch", batch)
    _pos_int("n_context", n_context)
    for name, r in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
        if len(r) != 2 or not r[0] < r[1]:
            raise ValueError(f"{name} must be a (low, high) pair with low < high, got {r!r}")
    keys = jax.random.split(key, batch)
    one = lambda k: _one_sine(k, n_context, tuple(map(float, amplitude)), tuple(map(float, phase)),
                              tuple(map(float, x_range)))
    return jax.vmap(one)(keys)


def to_alternating(tokens: jax.Array, d_x: int) -> jax.Array:
    """Convert concatenated tokens to the standard, alternating layout.

    ``(x_1, y_1), ..., (x_N, y_N), (x_q, 0)`` becomes the ``2N + 1`` tokens
    ``(x_1, 0), (0, y_1), (x_2, 0), (0, y_2), ..., (x_q, 0)``: inputs and
    targets live in separate tokens, as in an ordinary sequence model.

    Args:
        tokens: ``(..., N + 1, d_x + d_y)``.

    Returns:
        ``(..., 2N + 1, d_x + d_y)``.
    """
    if tokens.ndim < 2 or not (0 < d_x < tokens.shape[-1]):
        raise ValueError(f"tokens must be (..., n, d_x + d_y) with 0 < d_x < features; got {tokens.shape}, d_x={d_x}")
    ctx, query = tokens[..., :-1, :], tokens[..., -1:, :]
    xs = ctx.at[..., d_x:].set(0.0)
    ys = ctx.at[..., :d_x].set(0.0)
    pairs = jnp.stack([xs, ys], axis=-2)  # (..., N, 2, D)
    pairs = pairs.reshape(ctx.shape[:-2] + (2 * ctx.shape[-2], ctx.shape[-1]))
    return jnp.concatenate([pairs, query], axis=-2)
