"""Optimiser partitioning: train some leaves of a pytree, freeze the rest *exactly*.

"Frozen" must mean bit-unchanged. Zero gradients are not enough: AdamW's
decoupled weight decay (``p ← p − η λ p``) moves a parameter whose gradient is
zero, so an optimiser that merely *sees* a frozen backbone slowly rewrites it.
:func:`partition` routes frozen leaves to ``optax.set_to_zero()`` with
``optax.multi_transform``, so they receive an update of exactly 0.0 every step
(and their optimiser state is empty).

>>> import jax.numpy as jnp, optax
>>> params = {"backbone": jnp.ones(3), "head": jnp.ones(2)}
>>> tx = partition(optax.adamw(1e-2, weight_decay=0.1), trainable_where(params, lambda path: path[0] == "head"))
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax

PyTree = Any
TRAIN, FREEZE = "train", "freeze"


def _path_keys(path) -> tuple:
    out = []
    for p in path:
        for attr in ("key", "idx", "name"):
            if hasattr(p, attr):
                out.append(getattr(p, attr))
                break
        else:
            out.append(str(p))
    return tuple(out)


def trainable_where(params: PyTree, predicate: Callable[[tuple], bool]) -> PyTree:
    """A pytree of bools shaped like ``params``: ``predicate(path)`` for every leaf.

    ``path`` is a tuple of dict keys and list indices, e.g. ``("tasks", 1, "memory")``.
    """
    if not callable(predicate):
        raise ValueError("predicate must be callable: path tuple -> bool")
    return jax.tree_util.tree_map_with_path(lambda p, _: bool(predicate(_path_keys(p))), params)


def partition(tx: optax.GradientTransformation, trainable: PyTree) -> optax.GradientTransformation:
    """Apply ``tx`` to the leaves marked ``True`` in ``trainable``; give the others exactly zero update.

    Args:
        tx: any optax optimiser (weight decay included) for the trainable leaves.
        trainable: pytree of Python bools with the structure of the parameters
            (e.g. from :func:`trainable_where`).

    Returns:
        An ``optax.multi_transform`` of ``tx`` and ``optax.set_to_zero()``. Frozen
        leaves keep no optimiser state and are bit-unchanged after any number of steps.

    Raises:
        ValueError: ``trainable`` has a leaf that is not a Python bool.
    """
    leaves = jax.tree_util.tree_leaves(trainable)
    if not leaves or any(not isinstance(x, bool) for x in leaves):
        raise ValueError("trainable must be a non-empty pytree of Python bools (see trainable_where)")
    labels = jax.tree_util.tree_map(lambda t: TRAIN if t else FREEZE, trainable)
    return optax.multi_transform({TRAIN: tx, FREEZE: optax.set_to_zero()}, labels)


def count_trainable(params: PyTree, trainable: PyTree) -> int:
    """Number of scalars in the leaves marked ``True``.

    Raises:
        ValueError: the two pytrees have different structures.
    """
    p_def, t_def = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(trainable)
    if p_def != t_def:
        raise ValueError(f"trainable has structure {t_def}, params have {p_def}")
    return int(sum(p.size for p, t in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(trainable))
                   if t))
