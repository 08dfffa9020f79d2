"""Tuned SGD baselines: SGD with and without momentum over a wide learning-rate grid.

A meta-learned update rule is only as good as the baseline it is compared with. This module
writes that baseline once: a small MLP trained by SGD (heavy-ball momentum ``m``, ``m = 0`` is
plain SGD) for ``T`` steps, its query score recorded after **every** step, over a grid of
learning rates spanning four orders of magnitude (:data:`LR_GRID`) and momenta
(:data:`MOMENTA`). The learning rate is then chosen per step on *selection* episodes and the
chosen rate is scored on separate *evaluation* episodes (:func:`tune`), so that the baseline's
tuning is not fitted to the episodes it is scored on.

>>> import numpy as np
>>> sel = np.zeros((1, 3, 4, 2)); sel[0, 2] = 1.0          # (momenta, lrs, episodes, steps)
>>> ev = np.arange(24, dtype=float).reshape(1, 3, 4, 2)
>>> tuned = tune(sel, ev)
>>> tuned.lr_index.tolist(), bool(tuned.at_edge.all())
([[2, 2]], True)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LR_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # four orders of magnitude
MOMENTA = (0.0, 0.9)  # plain SGD and SGD with (heavy-ball) momentum


def init_mlp(key, sizes):
    """Layers ``[(W (n_in, n_out), b (n_out,)), ...]`` with ``W ~ N(0, 1/n_in)`` and zero biases."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must hold at least two positive layer widths, got {sizes}")
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp(params, x, hidden: Callable = jnp.tanh):
    """Outputs ``(batch, n_L)`` of the MLP ``params`` on ``x: (batch, n_0)``: ``hidden`` between layers, linear last."""
    for W, b in params[:-1]:
        x = hidden(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def sgd_curve(loss_fn: Callable, score_fn: Callable, params, xs, ys, lr, momentum=0.0):
    """``T`` SGD steps on the batches ``xs: (T, ...)``, ``ys: (T, ...)``; ``score_fn(params)`` after each.

    The update is optax's ``sgd(lr, momentum)``: ``v <- g + momentum * v``, ``params <- params - lr * v``
    (``momentum = 0``: plain SGD). ``lr`` and ``momentum`` may be traced, so a grid is one ``vmap``.

    Returns ``(final_params, scores: (T,))``.
    """
    if np.shape(xs)[:1] != np.shape(ys)[:1] or np.ndim(xs) < 1:
        raise ValueError(f"xs and ys need the same leading (step) axis, got {np.shape(xs)} and {np.shape(ys)}")

    def one(carry, batch):
        p, v = carry
        g = jax.grad(loss_fn)(p, *batch)
        v = jax.tree_util.tree_map(lambda vi, gi: gi + momentum * vi, v, g)
        p = jax.tree_util.tree_map(lambda pi, vi: pi - lr * vi, p, v)
        return (p, v), score_fn(p)

    velocity = jax.tree_util.tree_map(jnp.zeros_like, params)
    (params, _), scores = jax.lax.scan(one, (params, velocity), (xs, ys))
    return params, scores


def grid_curves(curve_fn: Callable, episodes, lrs=LR_GRID, momenta=MOMENTA):
    """``curve_fn(lr, momentum, episode) -> (T,)`` on every (momentum, lr, episode): ``(M, L, E, T)``.

    ``episodes`` is a pytree whose leaves share a leading axis ``E`` (episode keys ``(E, 2)``,
    or a tuple ``(task ids (E,), keys (E, 2))``). One ``vmap`` over the grid and the episodes;
    jit it at the call site.
    """
    lrs, momenta = jnp.asarray(lrs, jnp.float32), jnp.asarray(momenta, jnp.float32)
    per_key = jax.vmap(curve_fn, in_axes=(None, None, 0))
    per_lr = jax.vmap(per_key, in_axes=(0, None, None))
    return jax.vmap(per_lr, in_axes=(None, 0, None))(lrs, momenta, episodes)


class Tuned(NamedTuple):
    """The result of :func:`tune` (``M`` momenta, ``E`` evaluation episodes, ``T`` steps).

    Attributes:
        curves: ``(M, E, T)`` evaluation scores at the learning rate chosen per (momentum, step).
        lr_index: ``(M, T)`` index of that learning rate in the grid.
        at_edge: ``(M, T)`` the chosen rate is the grid's first or last (widen the grid).
        best: ``(E, T)`` evaluation scores of the (momentum, rate) chosen jointly per step.
        best_choice: ``(T, 2)`` that choice as (momentum index, lr index).
    """

    curves: np.ndarray
    lr_index: np.ndarray
    at_edge: np.ndarray
    best: np.ndarray
    best_choice: np.ndarray


def tune(select, evaluate) -> Tuned:
    """Choose the learning rate per step on ``select`` and score it on ``evaluate``.

    Args:
        select: ``(M, L, E_s, T)`` scores (higher is better) on selection episodes.
        evaluate: ``(M, L, E_e, T)`` scores of the same grid on separate evaluation episodes.

    Raises:
        ValueError: shapes that are not 4-D or do not share (M, L, T).
    """
    select, evaluate = np.asarray(select, np.float64), np.asarray(evaluate, np.float64)
    if select.ndim != 4 or evaluate.ndim != 4:
        raise ValueError(f"select and evaluate must be (M, L, E, T), got {select.shape} and {evaluate.shape}")
    M, L, _, T = select.shape
    if (evaluate.shape[0], evaluate.shape[1], evaluate.shape[3]) != (M, L, T):
        raise ValueError(f"select {select.shape} and evaluate {evaluate.shape} must share M, L and T")
    mean_sel = select.mean(2)                        # (M, L, T)
    lr_index = mean_sel.argmax(1)                    # (M, T)
    steps = np.arange(T)
    curves = np.stack([evaluate[m, lr_index[m], :, steps].T for m in range(M)])  # (M, E_e, T)
    flat = mean_sel.transpose(2, 0, 1).reshape(T, M * L).argmax(1)
    choice = np.stack([flat // L, flat % L], 1)      # (T, 2)
    best = np.stack([evaluate[choice[t, 0], choice[t, 1], :, t] for t in range(T)], 1)
    at_edge = (lr_index == 0) | (lr_index == L - 1)
    return Tuned(curves=curves, lr_index=lr_index, at_edge=at_edge, best=best, best_choice=choice)
