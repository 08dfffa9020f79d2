"""Compare two in-context predictors through their input gradients.

von Oswald et al. (2023, Sec. 3) compare a trained Transformer with gradient
descent not only by their losses but by their *sensitivities*: the Jacobian of
the prediction with respect to the query input, ``s(x_q) = dŷ/dx_q`` of shape
``(d_y, d_x)``, evaluated on the same tasks. Two predictors that implement the
same algorithm have the same sensitivities:

* ``sensitivity_cosine`` ("model cos"): mean over tasks of the cosine between
  the flattened sensitivities;
* ``sensitivity_l2`` ("model diff"): mean over tasks of the L2 distance
  between them.

A *predictor* here is any function ``predict(tokens) -> (d_y,)`` of ONE task's
tokens ``(n, d_x + d_y)`` whose query is the last token and whose query input
is the first ``d_x`` features of that token.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def _check_tokens(tokens, d_x):
    if tokens.ndim != 3:
        raise ValueError(f"tokens must have shape (batch, n, features), got {tokens.shape}")
    if isinstance(d_x, bool) or not isinstance(d_x, int) or not 0 < d_x <= tokens.shape[-1]:
        raise ValueError(f"d_x must be an integer in [1, {tokens.shape[-1]}], got {d_x!r}")


def sensitivity(predict: Callable, tokens: jax.Array, d_x: int) -> jax.Array:
    """Jacobian of the prediction w.r.t. the query input, for every task.

    Args:
        predict: ``predict(tokens_one_task: (n, D)) -> (d_y,)``.
        tokens: ``(batch, n, D)``; the query is token ``n - 1``.
        d_x: the query input is ``tokens[:, -1, :d_x]``.

    Returns:
        ``(batch, d_y, d_x)``.
    """
    _check_tokens(tokens, d_x)

    def one(t):
        f = lambda xq: jnp.atleast_1d(predict(t.at[-1, :d_x].set(xq)))
        return jax.jacrev(f)(t[-1, :d_x])

    return jax.vmap(one)(tokens)


def cosine(a: jax.Array, b: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Cosine between ``a[i]`` and ``b[i]`` (each flattened) for every row ``i``: ``(batch,)``."""
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"a and b must have the same shape (batch, ...), got {a.shape} and {b.shape}")
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    num = jnp.sum(a * b, axis=1)
    return num / jnp.maximum(jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1), eps)


def l2_diff(a: jax.Array, b: jax.Array) -> jax.Array:
    """L2 distance between ``a[i]`` and ``b[i]`` (each flattened) for every row ``i``: ``(batch,)``."""
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"a and b must have the same shape (batch, ...), got {a.shape} and {b.shape}")
    return jnp.linalg.norm((a - b).reshape(a.shape[0], -1), axis=1)


def sensitivity_cosine(predict_a: Callable, predict_b: Callable, tokens: jax.Array, d_x: int) -> jax.Array:
    """Mean cosine between the sensitivities of two predictors on the same tasks (scalar)."""
    return jnp.mean(cosine(sensitivity(predict_a, tokens, d_x), sensitivity(predict_b, tokens, d_x)))


def sensitivity_l2(predict_a: Callable, predict_b: Callable, tokens: jax.Array, d_x: int) -> jax.Array:
    """Mean L2 distance between the sensitivities of two predictors on the same tasks (scalar)."""
    return jnp.mean(l2_diff(sensitivity(predict_a, tokens, d_x), sensitivity(predict_b, tokens, d_x)))


def compare(predict_a: Callable, predict_b: Callable, tokens: jax.Array, d_x: int) -> dict:
    """All comparison metrics at once: ``cos``, ``l2`` (sensitivities) and ``pred_diff``.

    ``pred_diff`` is the mean L2 distance between the two predictions.
    """
    sa = sensitivity(predict_a, tokens, d_x)
    sb = sensitivity(predict_b, tokens, d_x)
    pa = jax.vmap(lambda t: jnp.atleast_1d(predict_a(t)))(tokens)
    pb = jax.vmap(lambda t: jnp.atleast_1d(predict_b(t)))(tokens)
    return {"cos": jnp.mean(cosine(sa, sb)), "l2": jnp.mean(l2_diff(sa, sb)), "pred_diff": jnp.mean(l2_diff(pa, pb))}
