"""Unroll an inner learning loop with ``lax.scan``: per-step losses and optional truncation.

Meta-learning (learned update rules, learned optimisers, MAML) differentiates an
outer loss through ``T`` steps of an inner loop. :func:`unroll` runs those steps
in one ``lax.scan`` (one compile for any ``T``), returns the loss of every step
(so the outer loss can average them, a standard stabiliser) and can **truncate**
back-propagation: every ``truncation`` steps the carried state passes through
``stop_gradient``, so meta-gradients only flow through the last ``<= truncation``
steps before each loss (truncated back-propagation through time)::

    def inner(state, batch):                 # one inner step
        new_state = ...
        return new_state, loss_of(new_state, batch)

    final, losses = unroll(inner, state0, batches)            # losses: (T,)
    outer = losses.mean()                                      # averaged over the unroll
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def _leading_length(xs) -> int:
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("xs must contain at least one array (the per-step inputs)")
    lengths = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if None in lengths or len(lengths) != 1:
        raise ValueError(f"every leaf of xs needs the same leading (step) axis, got lengths {lengths}")
    return lengths.pop()


def unroll(step: Callable[[Any, Any], tuple], state, xs, *, truncation: int | None = None):
    """Run ``state, loss_t = step(state, xs[t])`` for every ``t`` in one ``lax.scan``.

    Args:
        step: ``step(state, x_t) -> (state, loss_t)``; ``loss_t`` a scalar (or any pytree).
        state: initial carry (any pytree of arrays).
        xs: per-step inputs, a pytree whose leaves share a leading axis ``T``.
        truncation: ``None`` (full back-propagation) or a positive ``K``: the
            carry is passed through ``stop_gradient`` before steps ``K, 2K, ...``.

    Returns:
        ``(final_state, losses)`` with ``losses`` stacked along a leading ``(T,)`` axis.

    Raises:
        ValueError: ``xs`` without a common leading axis, or a bad ``truncation``.
    """
    length = _leading_length(xs)
    if truncation is not None and (isinstance(truncation, bool) or not isinstance(truncation, (int, np.integer))
                                   or truncation < 1):
        raise ValueError(f"truncation must be None or a positive integer, got {truncation!r}")

    def body(carry, inp):
        t, x = inp
        if truncation is not None:
            cut = (t % truncation == 0) & (t > 0)
            carry = jax.tree_util.tree_map(lambda c: jnp.where(cut, jax.lax.stop_gradient(c), c), carry)
        return step(carry, x)

    return jax.lax.scan(body, state, (jnp.arange(length), xs))
