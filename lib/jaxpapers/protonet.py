"""Prototypical networks (Snell et al., 2017): the nearest-class-mean few-shot baseline.

Embed the support set with a trained network ``φ``, average each class into a
*prototype* ``μ_c = mean_{i: y_i = c} φ(x_i)`` and classify a query by the
negative squared distance, ``z_c(x) = -‖φ(x) - μ_c‖²``. Expanding the square,

    z_c(x) = 2 μ_c·φ(x) - ‖μ_c‖² - ‖φ(x)‖²,

a *linear* classifier with weights ``2 μ_c`` and biases ``-‖μ_c‖²`` (the last
term is the same for every class): the construction a single attention layer
can express (HyperTransformer, Appendix A).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def prototypes(phi: jax.Array, labels: jax.Array, n_way: int, mask: jax.Array | None = None) -> jax.Array:
    """Class means ``μ_c``: ``phi: (n, F)``, ``labels: (n,)`` ints in ``[0, n_way)`` -> ``(n_way, F)``.

    ``mask: (n,)`` drops samples (padding, unbalanced supports). A class without
    samples gets the zero vector.
    """
    if isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or n_way < 1:
        raise ValueError(f"n_way must be a positive integer, got {n_way!r}")
    if phi.ndim != 2 or labels.shape != phi.shape[:1]:
        raise ValueError(f"phi must be (n, F) and labels (n,), got {phi.shape} and {labels.shape}")
    onehot = jax.nn.one_hot(labels, n_way, dtype=phi.dtype)  # (n, n_way)
    if mask is not None:
        if mask.shape != labels.shape:
            raise ValueError(f"mask must have shape {labels.shape}, got {mask.shape}")
        onehot = onehot * mask.astype(phi.dtype)[:, None]
    counts = onehot.sum(0)
    return (onehot.T @ phi) / jnp.maximum(counts, 1.0)[:, None]


def logits(phi_query: jax.Array, protos: jax.Array) -> jax.Array:
    """``-‖φ(x) - μ_c‖²``: ``phi_query: (m, F)``, ``protos: (n_way, F)`` -> ``(m, n_way)``."""
    if phi_query.shape[-1] != protos.shape[-1]:
        raise ValueError(f"feature sizes differ: {phi_query.shape[-1]} vs {protos.shape[-1]}")
    d2 = (jnp.sum(phi_query**2, -1, keepdims=True) - 2 * phi_query @ protos.T + jnp.sum(protos**2, -1))
    return -d2


def linear_weights(protos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The equivalent linear layer: ``W = 2 μᵀ: (F, n_way)`` and ``b = -‖μ_c‖²: (n_way,)``."""
    return 2 * protos.T, -jnp.sum(protos**2, -1)


def joint_logits(embed, support_x: jax.Array, support_y: jax.Array, query_x: jax.Array,
                 n_way: int) -> jax.Array:
    """One ProtoNet episode with support and queries embedded in **one** call of ``embed``.

    With a batch-statistics network (batch norm in training mode) the embedding of a
    sample depends on its batch; common ProtoNet practice embeds the support and the
    queries together, so both see the same normalisation.

    Args:
        embed: ``(B, ...) -> (B, F)``.
        support_x: ``(n, ...)``; support_y: ``(n,)`` ints in ``[0, n_way)``; query_x: ``(m, ...)``.
        n_way: number of classes.

    Returns:
        ``(m, n_way)`` logits ``-‖φ(x) - μ_c‖²``.
    """
    if support_x.shape[1:] != query_x.shape[1:]:
        raise ValueError(f"support and query samples must have the same shape, got {support_x.shape[1:]} "
                         f"and {query_x.shape[1:]}")
    n = support_x.shape[0]
    phi = embed(jnp.concatenate([support_x, query_x]))
    if phi.ndim != 2 or phi.shape[0] != n + query_x.shape[0]:
        raise ValueError(f"embed must map (B, ...) to (B, F), got {phi.shape}")
    return logits(phi[n:], prototypes(phi[:n], support_y, n_way))
