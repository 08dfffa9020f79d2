"""Entropic affinities (perplexity-calibrated Gaussian affinities) for SNE, t-SNE and EE.

For every point n the conditional affinities are

    p_{m|n} = exp(-beta_n ||y_n - y_m||^2) / sum_{k != n} exp(-beta_n ||y_n - y_k||^2),

with the precision beta_n chosen so that the entropy of p_{.|n} equals log(perplexity)
(Hinton & Roweis 2003; van der Maaten & Hinton 2008, eq. 1 and the perplexity definition).
The joint affinities are P = (P_cond + P_cond^T) / (2N) (t-SNE paper, symmetrised SNE).

Two forms:

* dense: :func:`entropic_affinities` returns the (N, N) conditional matrix; :func:`joint`
  symmetrises it (use for N up to a few thousand);
* sparse k-NN: :func:`knn` finds the k nearest neighbours by row blocks (never forming
  N x N), :func:`entropic_affinities_knn` calibrates on those k neighbours only, and
  :func:`joint_knn` symmetrises into a padded row form ``(idx (N, k2), val (N, k2))``.

The precision is found by a vectorised bisection on log(beta) (all points at once, a fixed
number of steps inside ``lax.fori_loop``), so the whole calibration is one jitted call.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def sq_distances(y: jax.Array) -> jax.Array:
    """Squared Euclidean distances ``(N, N)`` of the rows of ``y`` (N, D), from differences.

    Uses explicit coordinate differences (no ||a||^2 + ||b||^2 - 2ab cancellation).
    """
    y = jnp.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must have shape (N, D), got {y.shape}")
    diff = y[:, None, :] - y[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def _calibrate(d: jax.Array, mask: jax.Array, log_perp: float, steps: int):
    """Bisection on log(beta) per row so that H(p_row) = log_perp. d, mask: (N, M)."""
    # shift by the smallest valid distance for numerical stability (does not change p)
    dmin = jnp.min(jnp.where(mask, d, jnp.inf), axis=1, keepdims=True)
    d = jnp.where(mask, d - dmin, 0.0)

    def entropy(log_beta):
        beta = jnp.exp(log_beta)[:, None]
        logits = jnp.where(mask, -beta * d, -jnp.inf)
        logp = jax.nn.log_softmax(logits, axis=1)
        p = jnp.where(mask, jnp.exp(logp), 0.0)
        return -jnp.sum(jnp.where(mask, p * logp, 0.0), axis=1), p

    n = d.shape[0]
    lo = jnp.full((n,), -30.0, d.dtype)
    hi = jnp.full((n,), 30.0, d.dtype)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        h, _ = entropy(mid)
        # entropy decreases with beta: too high an entropy -> increase beta
        too_flat = h > log_perp
        return jnp.where(too_flat, mid, lo), jnp.where(too_flat, hi, mid)

    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    log_beta = 0.5 * (lo + hi)
    _, p = entropy(log_beta)
    return p, jnp.exp(log_beta)


@partial(jax.jit, static_argnames=("steps",))
def _entropic_dense(y, perplexity, steps):
    d = sq_distances(y)
    n = d.shape[0]
    mask = ~jnp.eye(n, dtype=bool)
    return _calibrate(d, mask, jnp.log(perplexity), steps)


def _check_perplexity(perplexity, n_candidates):
    if not np.isscalar(perplexity) or not perplexity > 1:
        raise ValueError(f"perplexity must be a number > 1, got {perplexity!r}")
    if perplexity >= n_candidates:
        raise ValueError(f"perplexity must be below the number of candidate neighbours ({n_candidates}), "
                         f"got {perplexity}")


def entropic_affinities(y, perplexity: float = 30.0, steps: int = 64):
    """Conditional entropic affinities of every point (dense).

    Args:
        y: data ``(N, D)``.
        perplexity: target perplexity ``2^H`` in nats convention ``exp(H)``, ``1 < perplexity < N - 1``.
        steps: bisection steps on ``log beta`` (64 halvings of [-30, 30] reach float precision).

    Returns:
        ``(p_cond (N, N), beta (N,))``: row n holds ``p_{m|n}`` (zero diagonal, rows sum to 1)
        and ``beta_n`` is the precision of point n's Gaussian.
    """
    y = jnp.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must have shape (N, D), got {y.shape}")
    _check_perplexity(perplexity, y.shape[0] - 1)
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return _entropic_dense(y, float(perplexity), int(steps))


def joint(p_cond) -> jax.Array:
    """Symmetrised joint affinities ``P = (P_cond + P_cond^T) / (2N)`` (sums to 1), shape (N, N)."""
    p_cond = jnp.asarray(p_cond)
    if p_cond.ndim != 2 or p_cond.shape[0] != p_cond.shape[1]:
        raise ValueError(f"p_cond must be square (N, N), got {p_cond.shape}")
    n = p_cond.shape[0]
    return (p_cond + p_cond.T) / (2.0 * n)


@partial(jax.jit, static_argnames=("k", "block"))
def _knn(y, k, block):
    n = y.shape[0]
    pad = (-n) % block
    rows = jnp.arange(n + pad).reshape(-1, block)

    def one(row_ids):
        yb = y[jnp.minimum(row_ids, n - 1)]
        diff = yb[:, None, :] - y[None, :, :]
        d = jnp.sum(diff * diff, axis=-1)
        d = jnp.where(row_ids[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
        neg, idx = jax.lax.top_k(-d, k)
        return -neg, idx

    d, idx = jax.lax.map(one, rows)
    return d.reshape(-1, k)[:n], idx.reshape(-1, k)[:n]


def knn(y, k: int, block: int = 512):
    """Exact k nearest neighbours (self excluded), by row blocks of size ``block``.

    Returns ``(sq_dist (N, k), idx (N, k) int32)``, sorted by increasing distance.
    Memory: ``block * N`` distances at a time, never N x N.
    """
    y = jnp.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must have shape (N, D), got {y.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k < y.shape[0]:
        raise ValueError(f"k must be an integer in [1, N-1], got {k!r}")
    if not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    return _knn(y, int(k), int(min(block, y.shape[0])))


def entropic_affinities_knn(sq_dist, perplexity: float = 30.0, steps: int = 64):
    """Entropic affinities restricted to each point's k neighbours.

    Args:
        sq_dist: ``(N, k)`` squared distances to the neighbours (from :func:`knn`);
            ``k >= 3 * perplexity`` is the usual choice.

    Returns:
        ``(p_cond (N, k), beta (N,))`` with rows summing to 1.
    """
    sq_dist = jnp.asarray(sq_dist)
    if sq_dist.ndim != 2:
        raise ValueError(f"sq_dist must have shape (N, k), got {sq_dist.shape}")
    _check_perplexity(perplexity, sq_dist.shape[1])
    mask = jnp.ones(sq_dist.shape, bool)
    return jax.jit(_calibrate, static_argnums=(3,))(sq_dist, mask, jnp.log(float(perplexity)), int(steps))


def joint_knn(idx, p_cond):
    """Symmetrise sparse conditional affinities into padded rows (NumPy, done once).

    Args:
        idx: ``(N, k)`` neighbour indices; p_cond: ``(N, k)`` conditional affinities.

    Returns:
        ``(idx2 (N, k2) int32, val2 (N, k2) float32)``: row n lists the union of its
        out- and in-neighbours with ``P_nm = (p_{m|n} + p_{n|m}) / (2N)``; padding entries
        point to n itself with value 0. Values sum to 1 over the whole matrix.
    """
    idx = np.asarray(idx)
    p_cond = np.asarray(p_cond, dtype=np.float64)
    if idx.shape != p_cond.shape or idx.ndim != 2:
        raise ValueError(f"idx and p_cond must have the same (N, k) shape, got {idx.shape}, {p_cond.shape}")
    n, k = idx.shape
    import scipy.sparse as sp

    rows = np.repeat(np.arange(n), k)
    m = sp.csr_matrix((p_cond.ravel(), (rows, idx.ravel())), shape=(n, n))
    m = ((m + m.T) / (2.0 * n)).tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    k2 = int(counts.max())
    idx2 = np.tile(np.arange(n)[:, None], (1, k2)).astype(np.int32)
    val2 = np.zeros((n, k2), np.float32)
    pos = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    r = np.repeat(np.arange(n), counts)
    idx2[r, pos] = m.indices
    val2[r, pos] = m.data
    return jnp.asarray(idx2), jnp.asarray(val2)


def densify(idx, val, n: int) -> jax.Array:
    """Dense ``(n, n)`` matrix from padded rows (for tests and small N)."""
    idx = jnp.asarray(idx)
    val = jnp.asarray(val)
    if idx.shape != val.shape or idx.ndim != 2 or idx.shape[0] != n:
        raise ValueError(f"idx and val must both have shape (n, k) with n={n}, got {idx.shape}, {val.shape}")
    rows = jnp.repeat(jnp.arange(n), idx.shape[1])
    return jnp.zeros((n, n), val.dtype).at[rows, idx.ravel()].add(val.ravel())
