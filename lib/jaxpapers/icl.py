"""Linear self-attention as gradient descent (von Oswald et al., ICML 2023).

Tokens follow :mod:`jaxpapers.tasks.regression`: ``e_i = (x_i, y_i)`` for the
``N`` context points and ``e_q = (x_q, -W_0 x_q)`` for the query (last token).

**LSA layer** (paper eq. 5). Every token ``j`` (context and query) is updated by
attention over the *context tokens only*, without softmax, scaling or ``1/N``:

    e_j <- e_j + P sum_i (W_V e_i) (W_K e_i)^T (W_Q e_j).                    (1)

Here it is :func:`jaxpapers.attention.mha` with ``softmax=False, scaled=False``
and ``x_kv = tokens[..., :N, :]``; parameters are an ``init_mha`` dict in the
row-vector convention (``wq, wk: (D, heads, k)``, ``wv: (D, heads, v)``,
``wo: (heads, v, D)``). The prediction is read as minus the query's y-slot,
``ŷ_q = -(e_q)_y``.

**Proposition 1 (construction).** With ``W_K = W_Q = [[I, 0], [0, 0]]``,
``P W_V = (η/N) [[0, 0], [W_0, -I]]`` one layer maps the query's y-slot from
``-W_0 x_q`` to ``-W_1 x_q`` with

    W_1 = W_0 - η ∇L(W_0),   L(W) = 1/(2N) sum_i ||W x_i - y_i||^2,         (2)

so ``ŷ_q = W_1 x_q`` is exactly one gradient-descent step. Adding ``-γ I`` to
the x-block of ``P W_V`` also moves the inputs, ``x_j <- (I - γ Σ̂) x_j`` with
``Σ̂ = X^T X / N``: that is the paper's GD++ (Sec. 4).

**Scale symmetries.** The model depends on the weights only through the score
matrix ``M = W_Q W_K^T`` and the value matrix ``V = W_V W_O`` (row convention),
and ``M -> c M, V -> V / c`` leaves it unchanged. Compare products after
normalising ``mean diag M_xx = 1`` (:func:`normalise_products`).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxpapers import attention
from jaxpapers._validate import positive_int as _pos_int

# ----------------------------------------------------------------------------- checks


def _check_tokens(tokens, n_context, d_x=None):
    if tokens.ndim < 2:
        raise ValueError(f"tokens must have shape (..., n, features), got {tokens.shape}")
    _pos_int("n_context", n_context)
    if n_context >= tokens.shape[-2]:
        raise ValueError(f"n_context={n_context} must be smaller than the number of tokens {tokens.shape[-2]}")
    if d_x is not None:
        _pos_int("d_x", d_x)
        if d_x >= tokens.shape[-1]:
            raise ValueError(f"d_x={d_x} must be smaller than the token size {tokens.shape[-1]}")


# ----------------------------------------------------------------------------- the LSA model


def init_lsa(key: jax.Array, d_model: int, *, key_size: int | None = None, num_heads: int = 1,
             init_scale: float = 0.002) -> dict:
    """Random LSA parameters (an ``init_mha`` dict, value size = key size, no biases).

    ``key_size`` defaults to ``d_model``; ``init_scale`` is the weights' standard
    deviation (plain normal). The authors' initialiser is :func:`init_lsa_fan_in`,
    where their ``0.002 / num_layers`` is a *variance scale*, not a standard deviation.
    """
    key_size = d_model if key_size is None else key_size
    return attention.init_mha(key, d_model, num_heads, key_size, init_scale=init_scale)


# std of a unit normal truncated to [-2, 2] (the factor Haiku and Keras divide by)
_TRUNC_STD = 0.87962566103423978


def fan_in_std(scale: float, fan_in: int) -> float:
    """The ``stddev`` that ``VarianceScaling(scale, "fan_in", "truncated_normal")`` passes to its normal.

    ``sqrt(scale / fan_in) / 0.8796``: for the authors' ``scale = 0.002`` and fan-in 11
    this is 0.0153 (0.0089 for ``0.002 / 3``). The normal is truncated at two of these, so
    the weights themselves have variance ``scale / fan_in`` (std 0.0135 for 0.002 and 11).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")
    _pos_int("fan_in", fan_in)
    return math.sqrt(scale / fan_in) / _TRUNC_STD


def init_lsa_fan_in(key: jax.Array, d_model: int, *, scale: float = 0.002, key_size: int | None = None,
                    num_heads: int = 1) -> dict:
    """The authors' initialiser: ``hk.initializers.VarianceScaling(scale)`` on four separate matrices.

    Each of ``wq, wk, wv`` (fan-in ``d_model``) and ``wo`` (fan-in ``heads * key_size``) is a
    normal with ``stddev = fan_in_std(scale, fan_in)`` truncated to ``[-2, 2] * stddev``, so
    its variance is ``scale / fan_in``. The authors pass ``scale = 0.002 / num_layers``
    (paper App. A.12; ``transformer.py``): ``scale`` is a variance scale, not a std.

    Returns:
        An ``init_mha``-style dict (value size = key size, no biases).
    """
    _pos_int("d_model", d_model)
    _pos_int("num_heads", num_heads)
    key_size = d_model if key_size is None else key_size
    _pos_int("key_size", key_size)
    kq, kk, kv, ko = jax.random.split(key, 4)

    def tn(k, shape, fan_in):
        return fan_in_std(scale, fan_in) * jax.random.truncated_normal(k, -2.0, 2.0, shape, jnp.float32)

    return {"wq": tn(kq, (d_model, num_heads, key_size), d_model),
            "wk": tn(kk, (d_model, num_heads, key_size), d_model),
            "wv": tn(kv, (d_model, num_heads, key_size), d_model),
            "wo": tn(ko, (num_heads, key_size, d_model), num_heads * key_size)}


def lsa_layer(params: dict, tokens: jax.Array, n_context: int, *, damping: float = 1.0) -> jax.Array:
    """One LSA layer, eq. (1): ``tokens + damping * attention(tokens -> context)``.

    Args:
        params: an :func:`init_lsa` / :func:`gd_construction` dict.
        tokens: ``(..., n, D)``; the first ``n_context`` tokens are keys/values.
        n_context: number of context tokens ``N``.
        damping: factor on the update (the authors' ``dampening``).

    Returns:
        Updated tokens ``(..., n, D)``.
    """
    _check_tokens(tokens, n_context)
    out, _ = attention.mha(params, tokens, tokens[..., :n_context, :], softmax=False, scaled=False)
    return tokens + damping * out


def lsa_readouts(layers: Sequence[dict], tokens: jax.Array, n_context: int, d_y: int, *,
                 damping: float = 1.0) -> jax.Array:
    """Predictions ``-(e_q)_y`` after every layer of a stack: ``(K, ..., d_y)``.

    ``layers`` is a list of parameter dicts; repeat one dict (``[p] * K``) for a
    weight-shared ("recurrent") stack.
    """
    _pos_int("d_y", d_y)
    if len(layers) < 1:
        raise ValueError("layers must hold at least one parameter dict")
    outs = []
    for p in layers:
        tokens = lsa_layer(p, tokens, n_context, damping=damping)
        outs.append(-tokens[..., -1, tokens.shape[-1] - d_y:])
    return jnp.stack(outs)


def lsa_predict(layers: Sequence[dict], tokens: jax.Array, n_context: int, d_y: int, *,
                damping: float = 1.0) -> jax.Array:
    """Prediction of the whole stack, ``(..., d_y)`` (last row of :func:`lsa_readouts`)."""
    return lsa_readouts(layers, tokens, n_context, d_y, damping=damping)[-1]


def regression_loss(pred: jax.Array, targets: jax.Array) -> jax.Array:
    """The paper's loss ``mean_tasks ½ ||ŷ_q - y_q||^2`` for ``pred, targets: (batch, d_y)``."""
    if pred.shape != targets.shape:
        raise ValueError(f"pred and targets must have the same shape, got {pred.shape} and {targets.shape}")
    return 0.5 * jnp.mean(jnp.sum((pred - targets) ** 2, axis=-1))


def with_initial_guess(tokens: jax.Array, w0: jax.Array, d_x: int) -> jax.Array:
    """Set the query's y-slot to ``-W_0 x_q`` (``w0: (d_y, d_x)`` or ``(..., d_y, d_x)``)."""
    _check_tokens(tokens, 1, d_x)
    d_y = tokens.shape[-1] - d_x
    if w0.shape[-2:] != (d_y, d_x):
        raise ValueError(f"w0 must end in shape ({d_y}, {d_x}), got {w0.shape}")
    xq = tokens[..., -1, :d_x]
    return tokens.at[..., -1, d_x:].set(-jnp.einsum("...yx,...x->...y", w0, xq))


# ----------------------------------------------------------------------------- the construction


def gd_construction(d_x: int, d_y: int, eta, n_context: int, *, w0=None, gamma=0.0) -> dict:
    """LSA weights that implement one GD step (Prop. 1), or one GD++ step with ``gamma``.

    In the row convention: ``wq = wk = [[I_x, 0], [0, 0]]`` (key size ``D``),
    ``wv = [[-γ I, η W_0^T], [0, -η I]]``, ``wo = I / N``; so ``P W_V`` of the
    paper is ``(1/N) wv^T``. ``eta`` and ``gamma`` may be traced scalars (for
    learning GD++ hyper-parameters).

    Returns:
        A single-head ``init_mha``-style dict.
    """
    _pos_int("d_x", d_x)
    _pos_int("d_y", d_y)
    _pos_int("n_context", n_context)
    d = d_x + d_y
    proj = jnp.diag(jnp.concatenate([jnp.ones(d_x), jnp.zeros(d_y)])).astype(jnp.float32)
    v = jnp.zeros((d, d), jnp.float32)
    v = v.at[:d_x, :d_x].set(-gamma * jnp.eye(d_x))
    v = v.at[d_x:, d_x:].set(-eta * jnp.eye(d_y))
    if w0 is not None:
        w0 = jnp.asarray(w0, jnp.float32)
        if w0.shape != (d_y, d_x):
            raise ValueError(f"w0 must have shape ({d_y}, {d_x}), got {w0.shape}")
        v = v.at[:d_x, d_x:].set(eta * w0.T)
    return {"wq": proj[:, None, :], "wk": proj[:, None, :], "wv": v[:, None, :],
            "wo": jnp.eye(d, dtype=jnp.float32)[None] / n_context}


# ----------------------------------------------------------------------------- explicit references


def _split(tokens, n_context, d_x):
    x = tokens[..., :n_context, :d_x]
    y = tokens[..., :n_context, d_x:]
    xq = tokens[..., -1, :d_x]
    return x, y, xq


def gd_predict(tokens: jax.Array, n_context: int, d_x: int, eta, *, steps: int = 1, w0=None) -> jax.Array:
    """Explicit gradient descent on eq. (2), in weight space; returns ``W_K x_q``: ``(..., d_y)``.

    ``w0`` is the start (default 0), shape ``(d_y, d_x)`` or ``(..., d_y, d_x)``.
    """
    _check_tokens(tokens, n_context, d_x)
    _pos_int("steps", steps)
    x, y, xq = _split(tokens, n_context, d_x)
    w = jnp.zeros(y.shape[:-2] + (y.shape[-1], d_x), tokens.dtype) if w0 is None else jnp.broadcast_to(
        w0, y.shape[:-2] + (y.shape[-1], d_x))
    for _ in range(steps):
        resid = jnp.einsum("...yx,...nx->...ny", w, x) - y
        w = w - eta * jnp.einsum("...ny,...nx->...yx", resid, x) / n_context
    return jnp.einsum("...yx,...x->...y", w, xq)


def gdpp_predict(tokens: jax.Array, n_context: int, d_x: int, etas, gammas) -> jax.Array:
    """Explicit GD++ (Sec. 4): per step, a GD step on the current inputs, then ``x <- (I - γ Σ̂) x``.

    Step ``k`` computes ``ΔW = η_k/N sum_i r_i x_i^T`` from the residuals ``r_i``
    (``y_i`` minus what is already fitted), adds ``ΔW x_q`` to the prediction,
    subtracts ``ΔW x_i`` from the residuals, and preconditions all inputs with
    ``I - γ_k Σ̂`` (``Σ̂`` of the current inputs). ``etas, gammas``: length ``K``.
    Returns ``(..., d_y)``.
    """
    _check_tokens(tokens, n_context, d_x)
    if len(etas) != len(gammas) or len(etas) < 1:
        raise ValueError(f"etas and gammas must have the same positive length, got {len(etas)}, {len(gammas)}")
    x, r, xq = _split(tokens, n_context, d_x)
    pred = jnp.zeros(r.shape[:-2] + (r.shape[-1],), tokens.dtype)
    for eta, gamma in zip(etas, gammas):
        dw = eta * jnp.einsum("...ny,...nx->...yx", r, x) / n_context
        pred = pred + jnp.einsum("...yx,...x->...y", dw, xq)
        r = r - jnp.einsum("...yx,...nx->...ny", dw, x)
        sigma = jnp.einsum("...na,...nb->...ab", x, x) / n_context
        x = x - gamma * jnp.einsum("...ab,...nb->...na", sigma, x)
        xq = xq - gamma * jnp.einsum("...ab,...b->...a", sigma, xq)
    return pred


def fit_gdpp(tokens: jax.Array, targets: jax.Array, n_context: int, d_x: int, steps: int, *,
             shared: bool = True, eta0: float = 6.0, gamma0: float = 0.5) -> tuple[list, list, float]:
    """Fit GD++ hyper-parameters on given tasks by Nelder–Mead (the authors train them with Adam).

    ``shared=True`` fits one ``(η, γ)`` for all ``steps`` (a weight-shared stack);
    ``shared=False`` one pair per step (a non-shared stack). The last
    step's ``γ`` never affects the prediction and is fixed to 0 when not shared (``2 * steps - 1``
    numbers).

    Returns:
        ``(etas, gammas, loss)``: per-step lists of floats and the fitted loss.
    """
    import numpy as np
    import scipy.optimize

    _check_tokens(tokens, n_context, d_x)
    _pos_int("steps", steps)

    def unpack(hp):
        if shared:
            return [hp[0]] * steps, [hp[1]] * steps
        return [hp[2 * k] for k in range(steps)], [hp[2 * k + 1] for k in range(steps - 1)] + [0.0]

    loss = jax.jit(lambda hp: regression_loss(gdpp_predict(tokens, n_context, d_x, *unpack(hp)), targets))
    x0 = np.array([eta0, gamma0] if shared else [eta0, gamma0] * (steps - 1) + [eta0], np.float64)
    res = scipy.optimize.minimize(lambda hp: float(loss(jnp.asarray(hp, jnp.float32))), x0=x0,
                                  method="Nelder-Mead",
                                  options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400 * x0.size})
    etas, gammas = unpack([float(v) for v in res.x])
    return [float(e) for e in etas], [float(g) for g in gammas], float(res.fun)


# ----------------------------------------------------------------------------- analytic optimum


def uniform_moments(input_range: float = 1.0) -> tuple[float, float]:
    """Variance ``σ²`` and fourth moment ``μ₄`` of ``U(-r/2, r/2)``: ``(a²/3, a⁴/5)``, ``a = r/2``."""
    if not (isinstance(input_range, (int, float)) and input_range > 0 and math.isfinite(input_range)):
        raise ValueError(f"input_range must be a finite positive number, got {input_range!r}")
    a = input_range / 2
    return a * a / 3, a**4 / 5


def expected_trace_sigma2(d_x: int, n_context: int, input_range: float = 1.0) -> float:
    """``E tr(Σ̂²)`` for i.i.d. uniform coordinates: ``(d μ₄ + d(d-1) σ⁴)/N + (N-1)/N d σ⁴``."""
    _pos_int("d_x", d_x)
    _pos_int("n_context", n_context)
    s2, m4 = uniform_moments(input_range)
    d, n = d_x, n_context
    return (d * m4 + d * (d - 1) * s2**2) / n + (n - 1) / n * d * s2**2


def gd_expected_loss(eta, d_x: int, n_context: int, *, input_range: float = 1.0, target_scale: float = 1.0,
                     d_y: int = 1):
    """Expected loss of one GD step from ``W_0 = 0`` with learning rate ``eta`` (array-friendly).

    ``E L(η) = ½ d_y s² σ² [d - 2 η d σ² + η² E tr(Σ̂²)]`` with ``s = target_scale``.
    """
    _pos_int("d_y", d_y)
    s2, _ = uniform_moments(input_range)
    t2 = expected_trace_sigma2(d_x, n_context, input_range)
    return 0.5 * d_y * target_scale**2 * s2 * (d_x - 2 * eta * d_x * s2 + eta**2 * t2)


def gd_optimal_eta(d_x: int, n_context: int, input_range: float = 1.0) -> float:
    """Minimiser of :func:`gd_expected_loss`: ``η* = d σ² / E tr(Σ̂²)``."""
    s2, _ = uniform_moments(input_range)
    return d_x * s2 / expected_trace_sigma2(d_x, n_context, input_range)


# ----------------------------------------------------------------------------- weight products


def weight_products(params: dict) -> tuple[jax.Array, jax.Array]:
    """Per-head score matrix ``M = W_Q W_K^T`` and value matrix ``V = W_V W_O``: each ``(heads, D, D)``.

    The score of query token ``j`` on key token ``i`` is ``e_j M e_i^T``; the
    update it carries is ``e_i V`` (row convention).
    """
    m = jnp.einsum("dhk,ehk->hde", params["wq"], params["wk"])
    v = jnp.einsum("dhv,hve->hde", params["wv"], params["wo"])
    return m, v


def _single_head(params):
    if params["wq"].shape[1] != 1:
        raise ValueError(f"this needs a single-head layer, got {params['wq'].shape[1]} heads")


def effective_eta(params: dict, d_x: int, n_context: int) -> jax.Array:
    """Learning rate ``η`` read off a trained single-head layer.

    ``η = -N · mean diag(M_xx) · mean diag(V_yy)``; for :func:`gd_construction`
    this returns ``eta`` exactly. (Without the factor ``N`` it is the per-point
    step ``η/N`` that the authors' code prints.)
    """
    _single_head(params)
    m, v = weight_products(params)
    m_xx = jnp.mean(jnp.diagonal(m[0, :d_x, :d_x]))
    v_yy = jnp.mean(jnp.diagonal(v[0, d_x:, d_x:]))
    return -n_context * m_xx * v_yy


def effective_gamma(params: dict, d_x: int, n_context: int) -> jax.Array:
    """The GD++ ``γ`` read off a trained single-head layer (:func:`gdpp_predict`'s scale).

    ``γ = -N · mean diag(M_xx) · mean diag(V_xx)``; for ``gd_construction(..., gamma=γ)``
    this returns ``γ`` exactly. The layer then moves inputs by ``x <- (I - γ Σ̂) x`` with
    ``Σ̂ = X^T X / N``; on the paper's scale ``x <- (I - γ' X X^T) x`` (App. A.10) it is
    ``γ' = γ / N``.
    """
    _single_head(params)
    m, v = weight_products(params)
    m_xx = jnp.mean(jnp.diagonal(m[0, :d_x, :d_x]))
    v_xx = jnp.mean(jnp.diagonal(v[0, :d_x, :d_x]))
    return -n_context * m_xx * v_xx


def normalise_products(params: dict, d_x: int) -> tuple[jax.Array, jax.Array]:
    """Remove the scale symmetry: ``(M / c, V c)`` with ``c = mean diag M_xx``; each ``(D, D)``."""
    _single_head(params)
    m, v = weight_products(params)
    c = jnp.mean(jnp.diagonal(m[0, :d_x, :d_x]))
    return m[0] / c, v[0] * c


def params_from_products(m: jax.Array, v: jax.Array) -> dict:
    """A single-head parameter dict (key size ``D``) with score matrix ``m`` and value matrix ``v``."""
    if m.ndim != 2 or m.shape[0] != m.shape[1] or v.shape != m.shape:
        raise ValueError(f"m and v must be square matrices of one shape, got {m.shape} and {v.shape}")
    eye = jnp.eye(m.shape[0], dtype=m.dtype)
    return {"wq": m[:, None, :], "wk": eye[:, None, :], "wv": v[:, None, :], "wo": eye[None]}


def interpolate(params_a: dict, params_b: dict, t, d_x: int) -> dict:
    """Layer with products ``(1 - t) · normalised(a) + t · normalised(b)`` (the paper's interpolation)."""
    ma, va = normalise_products(params_a, d_x)
    mb, vb = normalise_products(params_b, d_x)
    return params_from_products((1 - t) * ma + t * mb, (1 - t) * va + t * vb)


def prediction_blocks(params: dict, d_x: int) -> dict:
    """Keep only what a 1-layer prediction from ``W_0 = 0`` depends on, in canonical scale.

    The query's y-slot is 0, so the y-rows of ``M`` never contribute; the x-columns of
    ``V`` only move the x-part of tokens after the prediction is read. A 1-layer loss
    leaves both unconstrained; they are set to 0 here (useful to warm-start a deeper
    stack). The rest is :func:`normalise_products` and :func:`params_from_products`
    (key size ``D``). The 1-layer prediction is unchanged.
    """
    m, v = normalise_products(params, d_x)
    return params_from_products(m.at[d_x:, :].set(0.0), v.at[:, :d_x].set(0.0))


def rescale_eta(params: dict, factor) -> dict:
    """Multiply a layer's effective learning rate by ``factor`` (scales ``wo``)."""
    return dict(params, wo=params["wo"] * factor)


# ----------------------------------------------------------------------------- deeper / other layouts


def sinusoidal_positions(n: int, d: int) -> jax.Array:
    """Sinusoidal positional encodings ``(n, d)`` (``d`` even), as in Vaswani et al. (2017)."""
    _pos_int("n", n)
    _pos_int("d", d)
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    pos = jnp.arange(n, dtype=jnp.float32)[:, None]
    freq = jnp.exp(-math.log(10_000.0) * jnp.arange(0, d, 2, dtype=jnp.float32) / d)
    ang = pos * freq
    return jnp.stack([jnp.sin(ang), jnp.cos(ang)], axis=-1).reshape(n, d)


def init_copy_model(key: jax.Array, d_token: int, *, pos_size: int = 10, key_size: int = 20,
                    num_heads: int = 1, init_scale: float = 0.01) -> dict:
    """Two layers for the alternating token layout (Sec. 5): softmax layer 1, linear layer 2."""
    k1, k2 = jax.random.split(key)
    d = d_token + pos_size
    return {"softmax": attention.init_mha(k1, d, num_heads, key_size, init_scale=init_scale),
            "linear": attention.init_mha(k2, d, 1, key_size, init_scale=init_scale)}


def copy_model_predict(params: dict, tokens: jax.Array, d_y: int) -> jax.Array:
    """Prediction of the two-layer copy model on alternating tokens ``(..., 2N + 1, D)``.

    Positional encodings are concatenated to the tokens; both layers attend over
    the ``2N`` context tokens; layer 1 uses scaled softmax attention (it can copy
    ``y_i`` into the token of ``x_i``), layer 2 is an LSA layer (eq. 1). Returns
    ``-(query y-slot)``: ``(..., d_y)``.
    """
    n = tokens.shape[-2]
    pos_size = params["softmax"]["wq"].shape[0] - tokens.shape[-1]
    if pos_size < 2 or pos_size % 2 or n % 2 == 0:
        raise ValueError(f"tokens {tokens.shape} do not fit params (need 2N + 1 tokens and even pos_size)")
    pe = jnp.broadcast_to(sinusoidal_positions(n, pos_size), tokens.shape[:-1] + (pos_size,))
    h = jnp.concatenate([tokens, pe], axis=-1)
    ctx = n - 1
    out, _ = attention.mha(params["softmax"], h, h[..., :ctx, :], softmax=True, scaled=True)
    h = h + out
    h = lsa_layer(params["linear"], h, ctx)
    d_token = tokens.shape[-1]
    return -h[..., -1, d_token - d_y:d_token]


def init_sine_model(key: jax.Array, *, width: int = 40, hidden: int = 160, init_scale: float = 0.002) -> dict:
    """MLP + LSA for sine regression (Sec. 4): embed ``(x, y)`` 2 -> width, residual MLP, one LSA layer."""
    ke, km, ka = jax.random.split(key, 3)
    return {"embed": attention.init_mlp(ke, (2, width)),
            "mlp": attention.init_mlp(km, (width, hidden, width)),
            "lsa": init_lsa(ka, width, init_scale=init_scale)}


def sine_model_predict(params: dict, tokens: jax.Array) -> jax.Array:
    """``-(last feature of the query)`` after embed -> residual MLP -> LSA; tokens ``(..., N + 1, 2)``."""
    h = attention.mlp(params["embed"], tokens)
    h = h + attention.mlp(params["mlp"], h)
    h = lsa_layer(params["lsa"], h, tokens.shape[-2] - 1)
    return -h[..., -1, -1:]


def init_sine_gd(key: jax.Array, *, width: int = 40, hidden: int = 160, eta: float = 0.02) -> dict:
    """Features of ``x`` (MLP 1 -> hidden -> width) and a learning rate ``eta`` (stored as its log),
    for one GD step on a linear head."""
    if not (isinstance(eta, (int, float)) and eta > 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a finite positive number, got {eta!r}")
    return {"features": attention.init_mlp(key, (1, hidden, width)), "log_eta": jnp.asarray(math.log(eta), jnp.float32)}


def sine_gd_predict(params: dict, tokens: jax.Array) -> jax.Array:
    """One GD step (from 0) of a linear head on learned features ``φ(x)``: ``(..., 1)``.

    Equals the constructed LSA layer of Prop. 1 on tokens ``(φ(x_i), y_i)``.
    """
    x, y = tokens[..., :1], tokens[..., 1:]
    phi = attention.mlp(params["features"], x)
    n = tokens.shape[-2] - 1
    feats = jnp.concatenate([phi, y], axis=-1)
    return gd_predict(feats, n, phi.shape[-1], jnp.exp(params["log_eta"]))
