"""Nonlinear embeddings (EE, s-SNE, t-SNE), their pressure, and their optimisers.

All three objectives are written in the attractive + lambda * repulsive form of
Vladymyrov (NeurIPS 2019, "No Pressure!", Sec. 2), with d_nm = ||x_n - x_m||^2:

* EE     E(X) = sum_nm P_nm d_nm          + lam * sum_{n!=m} w^-_nm exp(-d_nm)
* s-SNE  E(X) = sum_nm P_nm d_nm          + lam * log sum_{n!=m} exp(-d_nm)
* t-SNE  E(X) = sum_nm P_nm log(1 + d_nm) + lam * log sum_{n!=m} (1 + d_nm)^-1

(at lam = 1 the s-SNE / t-SNE objectives equal KL(P||Q) - sum P log P). Every gradient has
the graph-Laplacian form grad E = 4 L(A) X with L(A) = diag(A 1) - A and

* EE     A = P - lam w^- K,        K = exp(-D)
* s-SNE  A = P - lam K / Z,        Z = sum_{n!=m} K_nm
* t-SNE  A = (P - lam K / Z) o K,  K = (1 + D)^-1

and the Hessian with respect to an extra coordinate z (d_nm -> d_nm + (z_n - z_m)^2) at
z = 0 is the same Laplacian: H_z = 4 L(A). Its diagonal 4 sum_m A_nm is the **pressure**
of point n; a point with negative pressure gains from leaving the plane (the paper's
"pressured points"). The attraction weights may be multiplied by an exaggeration alpha.

Dense functions take P as an (N, N) array; the blocked functions take P in padded k-NN
form ``(idx (N, k), val (N, k))`` (see :mod:`jaxpapers.affinities`) and compute the
repulsion by row blocks with ``lax.map``, never forming an N x N matrix.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpapers._validate import positive_int as _pos_int

KINDS = ("ee", "ssne", "tsne")


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_xp(x, p):
    if x.ndim != 2:
        raise ValueError(f"X must have shape (N, d), got {x.shape}")
    if p.ndim != 2 or p.shape != (x.shape[0], x.shape[0]):
        raise ValueError(f"P must have shape (N, N) = {(x.shape[0],) * 2}, got {p.shape}")


def _sq_dist(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared distances ``(..., M)`` between rows ``a (..., d)`` and ``b (..., M, d)`` or ``b (M, d)``.

    Summed one coordinate at a time: on a CPU, XLA handles ``d`` slices of shape ``(..., M)``
    far better than one ``(..., M, d)`` difference tensor reduced over its short last axis
    (about 8x faster for N = 1,797 in 2-D).
    """
    d = 0.0
    for c in range(a.shape[-1]):
        diff = a[..., c, None] - b[..., c]
        d = d + diff * diff
    return d


def sq_distances(x: jax.Array) -> jax.Array:
    """Squared distances ``(N, N)`` from coordinate differences (no cancellation)."""
    return _sq_dist(x, x)


def _offdiag(n, dtype):
    return 1.0 - jnp.eye(n, dtype=dtype)


def kernel(kind: str, d: jax.Array) -> jax.Array:
    """Embedding kernel K(d): ``exp(-d)`` for EE and s-SNE, ``1 / (1 + d)`` for t-SNE."""
    _check_kind(kind)
    return 1.0 / (1.0 + d) if kind == "tsne" else jnp.exp(-d)


def _pairwise(x, p, kind):
    """Checked inputs, N, squared distances and off-diagonal kernel values (dense)."""
    x, p = jnp.asarray(x), jnp.asarray(p)
    _check_kind(kind)
    _check_xp(x, p)
    n = x.shape[0]
    d = sq_distances(x)
    return x, p, n, d, kernel(kind, d) * _offdiag(n, x.dtype)


def objective(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0) -> jax.Array:
    """Objective E(X) of eqs. above (dense, pure JAX: differentiable to any order).

    Args:
        x: embedding ``(N, d)`` (d may include an extra coordinate z as the last column).
        p: joint affinities ``(N, N)``, symmetric, zero diagonal.
        kind: ``"ee"``, ``"ssne"`` or ``"tsne"``.
        lam: weight lambda of the repulsion.
        wneg: EE only: repulsive weights, a scalar or ``(N, N)``; default ``1 / N^2``.
        alpha: exaggeration of the attraction (P -> alpha P).
    """
    x, p, n, d, k = _pairwise(x, p, kind)
    if kind == "tsne":
        attract = jnp.sum(p * jnp.log1p(d))
    else:
        attract = jnp.sum(p * d)
    if kind == "ee":
        w = 1.0 / n**2 if wneg is None else wneg
        repulse = jnp.sum(w * k)
    else:
        repulse = jnp.log(jnp.sum(k))
    return alpha * attract + lam * repulse


def weights(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0) -> jax.Array:
    """Laplacian weights A ``(N, N)`` (zero diagonal) with grad E = 4 L(A) X and H_z = 4 L(A)."""
    x, p = jnp.asarray(x), jnp.asarray(p)
    _check_kind(kind)
    _check_xp(x, p)
    n = x.shape[0]
    k = kernel(kind, sq_distances(x)) * _offdiag(n, x.dtype)
    if kind == "ee":
        w = 1.0 / n**2 if wneg is None else wneg
        return alpha * p - lam * w * k
    q = k / jnp.sum(k)
    a = alpha * p - lam * q
    return a * k if kind == "tsne" else a


def laplacian(a: jax.Array) -> jax.Array:
    """Graph Laplacian ``diag(A 1) - A`` of a symmetric ``(N, N)`` matrix."""
    return jnp.diag(jnp.sum(a, axis=1)) - a


def gradient(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0) -> jax.Array:
    """Closed-form gradient ``4 L(A) X`` ``(N, d)`` (dense)."""
    a = weights(x, p, kind, lam, wneg, alpha)
    return 4.0 * (jnp.sum(a, axis=1)[:, None] * x - a @ x)


def pressure(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0) -> jax.Array:
    """Pressure of every point ``(N,)``: d^2E/dz_n^2 at z = 0, i.e. ``4 sum_m A_nm``.

    Negative pressure = a pressured point: lifting it alone out of the plane lowers E.
    """
    return 4.0 * jnp.sum(weights(x, p, kind, lam, wneg, alpha), axis=1)


def z_hessian(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0) -> jax.Array:
    """Hessian of E with respect to the extra coordinate z at z = 0: ``4 L(A)`` ``(N, N)``."""
    return 4.0 * laplacian(weights(x, p, kind, lam, wneg, alpha))


def lambda_min(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0):
    """Smallest eigenvalue and its eigenvector of the z-Hessian (dense ``eigh``, small N).

    Returns ``(value (), vector (N,))``. A negative value proves that the d-dimensional
    stationary point X is a saddle of the (d+1)-dimensional objective.
    """
    h = z_hessian(x, p, kind, lam, wneg, alpha)
    vals, vecs = jnp.linalg.eigh(h)
    return vals[0], vecs[:, 0]


def lambda_min_lanczos(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0, tol: float = 1e-6):
    """Smallest eigenpair of ``4 L(A)`` by Lanczos (SciPy ``eigsh`` on jitted mat-vecs)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    a = weights(x, p, kind, lam, wneg, alpha)
    deg = jnp.sum(a, axis=1)
    mv = jax.jit(lambda v: 4.0 * (deg * v - a @ v))
    n = a.shape[0]
    op = LinearOperator((n, n), matvec=lambda v: np.asarray(mv(jnp.asarray(v, a.dtype))), dtype=np.float64)
    # shift so that the smallest eigenvalue becomes the largest in magnitude
    shift = float(2 * 4.0 * jnp.max(jnp.sum(jnp.abs(a), axis=1)))
    op_s = LinearOperator((n, n), matvec=lambda v: op.matvec(v) - shift * v, dtype=np.float64)
    val, vec = eigsh(op_s, k=1, which="LM", tol=tol, v0=np.ones(n) + np.arange(n) / n)
    return float(val[0] + shift), vec[:, 0]


def value_and_grad(x, p, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0):
    """``(E, grad)`` from one evaluation of the weights (dense)."""
    x, p, n, d, k = _pairwise(x, p, kind)
    if kind == "ee":
        w = 1.0 / n**2 if wneg is None else wneg
        e = alpha * jnp.sum(p * d) + lam * jnp.sum(w * k)
        a = alpha * p - lam * w * k
    else:
        z = jnp.sum(k)
        attract = jnp.sum(p * jnp.log1p(d)) if kind == "tsne" else jnp.sum(p * d)
        e = alpha * attract + lam * jnp.log(z)
        a = alpha * p - lam * k / z
        if kind == "tsne":
            a = a * k
    g = 4.0 * (jnp.sum(a, axis=1)[:, None] * x - a @ x)
    return e, g


# ----------------------------------------------------------------------------- blocked (large N)


def _row_blocks(n, block):
    pad = (-n) % block
    return jnp.arange(n + pad).reshape(-1, block)


def _blocked_rows(x, kind, block, p=None, alpha=1.0):
    """Per-row sums over m without forming N x N (rows in blocks of ``block``).

    Returns ``(sK, sR, RX, att, sW, WX)``: sK = sum_m K_nm, R = K (EE, s-SNE) or K^2 (t-SNE),
    sR = sum_m R_nm, RX = sum_m R_nm x_m (all with the diagonal m = n excluded); when a dense
    ``p`` is given, att = sum_m alpha P_nm f(d_nm) (f = d or log(1 + d)), W = alpha P (EE, s-SNE)
    or alpha P o K (t-SNE), sW = sum_m W_nm and WX = sum_m W_nm x_m (zeros otherwise).
    The diagonal is removed analytically: d_nn = 0 exactly, so K_nn = R_nn = 1.
    """
    n, dim = x.shape

    def one(r):
        valid = (r < n).astype(x.dtype)
        rc = jnp.minimum(r, n - 1)
        xb = x[rc]
        d = _sq_dist(xb, x)
        k = kernel(kind, d)
        rr = k * k if kind == "tsne" else k
        sk = (jnp.sum(k, 1) - 1.0) * valid
        sr = (jnp.sum(rr, 1) - 1.0) * valid
        rx = (rr @ x - xb) * valid[:, None]
        if p is None:
            z1 = jnp.zeros_like(sk)
            return sk, sr, rx, z1, z1, jnp.zeros_like(rx)
        pb = alpha * p[rc] * valid[:, None]
        att = jnp.sum(pb * (jnp.log1p(d) if kind == "tsne" else d), 1)
        w = pb * k if kind == "tsne" else pb
        return sk, sr, rx, att, jnp.sum(w, 1), w @ x

    out = jax.lax.map(one, _row_blocks(n, block))
    flat = lambda a: a.reshape((-1,) + a.shape[2:])[:n]  # noqa: E731
    return tuple(flat(a) for a in out)


def _combine(x, kind, lam, wneg, att, sw, wx, sk, sr, rx):
    """E, grad and pressure from the per-row sums (see :func:`_blocked_rows`)."""
    if kind == "ee":
        c = lam * wneg
        e = jnp.sum(att) + lam * wneg * jnp.sum(sk)
    else:
        z = jnp.sum(sk)
        c = lam / z
        e = jnp.sum(att) + lam * jnp.log(z)
    g = 4.0 * ((sw[:, None] * x - wx) - c * (sr[:, None] * x - rx))
    press = 4.0 * (sw - c * sr)
    return e, g, press


@partial(jax.jit, static_argnames=("kind", "block"))
def _dense_blocked(x, p, kind, lam, wneg, alpha, block):
    sk, sr, rx, att, sw, wx = _blocked_rows(x, kind, block, p, alpha)
    return _combine(x, kind, lam, wneg, att, sw, wx, sk, sr, rx)


def dense_value_grad_pressure(x, p, kind: str, lam: float = 1.0, wneg: float | None = None, alpha: float = 1.0,
                              block: int = 256):
    """``(E, grad, pressure)`` for dense P ``(N, N)``, computed by row blocks (fast on CPU).

    Same values as :func:`value_and_grad` and :func:`pressure`; EE needs a scalar ``wneg``.
    """
    x, p = jnp.asarray(x), jnp.asarray(p)
    _check_kind(kind)
    _check_xp(x, p)
    w = 1.0 / x.shape[0] ** 2 if wneg is None else wneg
    if np.ndim(w) != 0:
        raise ValueError("the blocked form needs a scalar wneg (uniform repulsive weights)")
    if not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    return _dense_blocked(x, p, kind, lam, w, alpha, int(min(block, x.shape[0])))


@partial(jax.jit, static_argnames=("kind", "block"))
def _blocked_all(x, idx, val, kind, lam, wneg, alpha, block):
    x_nb = x[idx]  # (N, k, d)
    d = _sq_dist(x, x_nb)
    if kind == "tsne":
        att = alpha * jnp.sum(val * jnp.log1p(d), 1)
        w = alpha * val / (1.0 + d)
    else:
        att = alpha * jnp.sum(val * d, 1)
        w = alpha * val
    sw = jnp.sum(w, 1)
    wx = jnp.einsum("nk,nkd->nd", w, x_nb)
    sk, sr, rx, _, _, _ = _blocked_rows(x, kind, block)
    return _combine(x, kind, lam, wneg, att, sw, wx, sk, sr, rx)


def _check_sparse(x, idx, val, kind, block):
    _check_kind(kind)
    if x.ndim != 2:
        raise ValueError(f"X must have shape (N, d), got {x.shape}")
    if idx.shape != val.shape or idx.ndim != 2 or idx.shape[0] != x.shape[0]:
        raise ValueError(f"idx and val must both have shape (N, k) with N={x.shape[0]}, got {idx.shape}, {val.shape}")
    if not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")


def blocked_value_grad_pressure(x, idx, val, kind: str, lam: float = 1.0, wneg=None, alpha: float = 1.0,
                                block: int = 1024):
    """``(E, grad (N, d), pressure (N,))`` with sparse attraction and exact blocked repulsion.

    Args:
        x: ``(N, d)``; idx, val: padded symmetric P rows ``(N, k)`` (padding: value 0);
        block: rows per block (memory ~ ``block * N`` floats).
    """
    x, idx, val = jnp.asarray(x), jnp.asarray(idx), jnp.asarray(val)
    _check_sparse(x, idx, val, kind, block)
    w = 1.0 / x.shape[0] ** 2 if wneg is None else wneg
    if kind == "ee" and np.ndim(w) != 0:
        raise ValueError("blocked EE needs a scalar wneg (uniform repulsive weights)")
    return _blocked_all(x, idx, val, kind, lam, w, alpha, int(min(block, x.shape[0])))


# ----------------------------------------------------------------------------- objectives as callables


@lru_cache(maxsize=None)
def _vg_fn(form: str, kind: str, block: int):
    """One function object per (form, kind, block), so that compiled runners are shared."""
    if form == "sparse":
        def f(data, lam, wneg, x, alpha=1.0):
            e, g, _ = _blocked_all(x, data[0], data[1], kind, lam, wneg, alpha, min(block, x.shape[0]))
            return e, g
    elif form == "blocked":
        def f(data, lam, wneg, x, alpha=1.0):
            e, g, _ = _dense_blocked(x, data, kind, lam, wneg, alpha, min(block, x.shape[0]))
            return e, g
    else:
        def f(data, lam, wneg, x, alpha=1.0):
            return value_and_grad(x, data, kind, lam, wneg, alpha)
    return f


def make_objective(p, kind: str, lam: float = 1.0, wneg=None, block: int | None = None):
    """Return ``vg(X, alpha=1.0) -> (E, grad)`` for dense P ``(N, N)`` or sparse P ``(idx, val)``.

    ``vg`` is a ``jax.tree_util.Partial``: a pytree whose leaves are P, lambda and w^-, so it
    can be passed *into* jitted functions (the optimisers below) and one compilation serves
    every data set and seed of the same shapes. Dense P with a scalar ``wneg`` uses the
    row-blocked kernel (``block`` rows, default 256); sparse P uses
    :func:`blocked_value_grad_pressure` (default block 1024).
    """
    _check_kind(kind)
    w = wneg
    if isinstance(p, tuple):
        idx, val = jnp.asarray(p[0]), jnp.asarray(p[1])
        if idx.shape != val.shape or idx.ndim != 2:
            raise ValueError(f"sparse p must be (idx, val) of equal (N, k) shapes, got {idx.shape}, {val.shape}")
        n = idx.shape[0]
        w = 1.0 / n**2 if wneg is None else wneg
        if np.ndim(w) != 0:
            raise ValueError("sparse EE needs a scalar wneg (uniform repulsive weights)")
        fn, data = _vg_fn("sparse", kind, 1024 if block is None else int(block)), (idx, val)
    else:
        data = jnp.asarray(p)
        if data.ndim != 2 or data.shape[0] != data.shape[1]:
            raise ValueError(f"p must be (N, N) or a tuple (idx, val), got shape {data.shape}")
        n = data.shape[0]
        w = 1.0 / n**2 if wneg is None else wneg
        form = "blocked" if np.ndim(w) == 0 else "dense"
        fn = _vg_fn(form, kind, 256 if block is None else int(block))
    return jax.tree_util.Partial(fn, data, jnp.asarray(lam, jnp.float32), jnp.asarray(w, jnp.float32))


@jax.custom_vjp
def _energy(x, vg):
    return vg(x, 1.0)[0]


def _energy_fwd(x, vg):
    e, g = vg(x, 1.0)
    return e, (g, vg)


def _energy_bwd(res, ct):
    g, vg = res
    return ct * g, jax.tree_util.tree_map(jnp.zeros_like, vg)


_energy.defvjp(_energy_fwd, _energy_bwd)


def energy(x, vg) -> jax.Array:
    """Scalar E(X) of an objective ``vg`` whose ``jax.grad`` w.r.t. X is the closed form."""
    return _energy(x, vg)


# ----------------------------------------------------------------------------- optimisers


class TSNEConfig(NamedTuple):
    """Hyper-parameters of the standard t-SNE gradient descent (van der Maaten & Hinton 2008)."""

    learning_rate: float = 200.0
    exaggeration: float = 12.0   # alpha during the early phase (1 = none)
    exaggeration_steps: int = 250
    momentum_early: float = 0.5
    momentum_late: float = 0.8
    min_gain: float = 0.01


def tsne_gd(vg: Callable, x0, steps: int, cfg: TSNEConfig = TSNEConfig(), energy_every: int = 1):
    """t-SNE's gradient descent with momentum, gains and early exaggeration (``lax.scan``).

    Args:
        vg: ``vg(X, alpha) -> (E, grad)`` from :func:`make_objective`.
        x0: initial embedding ``(N, d)``.
        steps: number of iterations.
        energy_every: evaluate the objective only every this many iterations (and at the
            last); the update needs only the gradient, and skipping E (a logarithm per pair
            for t-SNE) makes the other iterations cheaper. scikit-learn checks its KL every
            50 iterations.

    Returns:
        ``(X, E_history (steps,))``; E is the objective at the alpha in use at that step
        (NaN at the iterations where it was not evaluated).
    """
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (N, d), got {x0.shape}")
    _pos_int("steps", steps)
    _pos_int("energy_every", energy_every)
    if cfg.learning_rate <= 0 or cfg.exaggeration < 1 or cfg.min_gain <= 0:
        raise ValueError(f"bad TSNEConfig {cfg}")
    return _tsne_run(vg, x0, int(steps), cfg, int(energy_every))


@partial(jax.jit, static_argnums=(2, 3, 4))
def _tsne_run(vg, x0, steps, cfg, energy_every=1):
    def grad_only(x, alpha):
        e, g = vg(x, alpha)  # e is unused in this branch, so XLA drops its computation
        return jnp.full_like(e, jnp.nan), g

    def step(carry, t):
        x, upd, gains = carry
        early = t < cfg.exaggeration_steps
        alpha = jnp.where(early, cfg.exaggeration, 1.0)
        mom = jnp.where(early, cfg.momentum_early, cfg.momentum_late)
        if energy_every == 1:
            e, g = vg(x, alpha)
        else:
            record = (t % energy_every == 0) | (t == steps - 1)
            e, g = jax.lax.cond(record, vg, grad_only, x, alpha)
        same = jnp.sign(g) == jnp.sign(upd)
        gains = jnp.maximum(jnp.where(same, gains * 0.8, gains + 0.2), cfg.min_gain)
        upd = mom * upd - cfg.learning_rate * gains * g
        return (x + upd, upd, gains), e

    (x, _, _), hist = jax.lax.scan(step, (x0, jnp.zeros_like(x0), jnp.ones_like(x0)), jnp.arange(steps))
    return x, hist


def spectral_direction(vg: Callable, x0, b_matrix, steps: int, shrink: float = 0.8, c1: float = 1e-4,
                       max_backtracks: int = 40):
    """Spectral-direction descent (Vladymyrov & Carreira-Perpinan 2012) with backtracking.

    Direction ``-B^{-1} grad`` with a constant positive-definite ``B`` (N, N), e.g.
    ``4 L(P) + eps I``; B is factorised once by Cholesky. Step 1 is tried first and
    shrunk by ``shrink`` until the Armijo condition holds.

    Returns ``(X, E_history (steps,))``.
    """
    x0 = jnp.asarray(x0)
    b_matrix = jnp.asarray(b_matrix)
    if b_matrix.shape != (x0.shape[0],) * 2:
        raise ValueError(f"b_matrix must have shape {(x0.shape[0],) * 2}, got {b_matrix.shape}")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")
    _pos_int("steps", steps)
    chol = jnp.linalg.cholesky(b_matrix)
    return _sd_run(vg, x0, chol, int(steps), float(shrink), float(c1), int(max_backtracks))


@partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _sd_run(vg, x0, chol, steps, shrink, c1, max_backtracks):
    def step(x, _):
        e, g = vg(x, 1.0)
        direc = -jax.scipy.linalg.cho_solve((chol, True), g)
        slope = jnp.sum(g * direc)

        def cond(s):
            eta, k, e_new = s
            return (e_new > e + c1 * eta * slope) & (k < max_backtracks)

        def body(s):
            eta, k, _ = s
            eta = eta * shrink
            return eta, k + 1, vg(x + eta * direc, 1.0)[0]

        eta, _, e_new = jax.lax.while_loop(cond, body, (jnp.ones((), x.dtype), 0, vg(x + direc, 1.0)[0]))
        ok = e_new <= e
        return jnp.where(ok, x + eta * direc, x), e

    return jax.lax.scan(step, x0, None, length=steps)


def lbfgs(fun: Callable, params0, steps: int, memory: int = 10, args: tuple = ()):
    """Minimise a scalar ``fun(params, *args)`` with ``optax.lbfgs`` (zoom line search).

    ``fun`` should be a module-level function (it keys the compilation cache); ``params``
    may be any pytree (e.g. ``{"x": X, "z": z}``); ``args`` is a tuple of pytrees (arrays,
    objectives from :func:`make_objective`) that are traced, so changing them, or
    ``steps``, does not recompile. Returns ``(params, final value)``.
    """
    _pos_int("steps", steps)
    if not isinstance(memory, (int, np.integer)) or memory < 1:
        raise ValueError(f"memory must be a positive integer, got {memory!r}")
    return _lbfgs_run(fun, int(memory), params0, tuple(args), jnp.asarray(steps, jnp.int32))


@partial(jax.jit, static_argnums=(0, 1))
def _lbfgs_run(fun, memory, params0, args, steps):
    opt = optax.lbfgs(memory_size=memory)
    f = lambda p: fun(p, *args)  # noqa: E731
    vg = optax.value_and_grad_from_state(f)

    def body(_, carry):
        params, state, _ = carry
        value, grad = vg(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(params, updates), state, value

    init = (params0, opt.init(params0), jnp.zeros((), jnp.float32))
    params, _, _ = jax.lax.fori_loop(0, steps, body, init)
    return params, f(params)


def minimize(vg: Callable, x0, steps: int, memory: int = 10):
    """L-BFGS on the d-dimensional objective ``vg(X, 1.0)`` (closed-form gradient).

    Returns ``(X, E)``.
    """
    return lbfgs(energy, jnp.asarray(x0), steps, memory, args=(vg,))


# ----------------------------------------------------------------------------- pressured points


def lift(x, z, mask):
    """Embedding ``(N, d+1)`` with the extra coordinate ``z * mask`` appended."""
    return jnp.concatenate([x, (z * mask)[:, None]], axis=1)


def penalised_energy(params, vg, mask, mu):
    """F_mu(X, z) = E([X, z o mask]) + mu * sum (z o mask)^2 (the escape objective)."""
    zm = params["z"] * mask
    return energy(lift(params["x"], params["z"], mask), vg) + mu * jnp.sum(zm * zm)


def pressured_points(vg: Callable, x, mask, z0, mus, steps_per_mu: int, memory: int = 10,
                     z_tol: float | None = None, growth: float = 4.0, max_extra: int = 12):
    """The paper's escape step: let the masked points use an extra dimension, then push it back.

    For every mu in ``mus`` (increasing) minimise, by L-BFGS over (X, z) from the previous
    stage, ``F_mu(X, z) = E([X, z o mask]) + mu * sum_n (z_n mask_n)^2``; only masked
    (pressured) points have a free z. Since d^2F/dz_n^2 = pressure_n + 2 mu at z = 0, every
    lifted point is stable at z = 0 once ``mu > mu* = max_n(-pressure_n) / 2``.

    Args:
        vg: objective from :func:`make_objective` (works for X of any width).
        x: converged embedding ``(N, d)``; mask: ``(N,)`` 0/1 (the pressured points).
        z0: initial extra coordinate ``(N,)``; mus: sequence of penalties.
        steps_per_mu: L-BFGS iterations per penalty value.
        z_tol: if given, keep multiplying the last mu by ``growth`` (at most ``max_extra``
            more stages) until ``max |z| < z_tol``: mu > mu* only makes z = 0 *locally*
            stable, and a point lifted far away can sit in another basin.

    Returns:
        ``(X (N, d), z (N,), frames, mus_used)``: frames is a list of (X, z) after each stage
        and mus_used the penalties actually run (``len(mus_used) * steps_per_mu`` iterations).
    """
    x = jnp.asarray(x)
    mask = jnp.asarray(mask, x.dtype)
    z0 = jnp.asarray(z0, x.dtype)
    if mask.shape != (x.shape[0],) or z0.shape != mask.shape:
        raise ValueError(f"mask and z0 must have shape ({x.shape[0]},), got {mask.shape}, {z0.shape}")
    if len(mus) < 1 or any(m < 0 for m in mus):
        raise ValueError("mus must be a non-empty sequence of non-negative penalties")
    _pos_int("steps_per_mu", steps_per_mu)
    params = {"x": x, "z": z0 * mask}
    frames, used = [], []
    mus = list(mus)
    extra = 0
    while True:
        mu = mus[len(used)]
        params, _ = lbfgs(penalised_energy, params, steps_per_mu, memory,
                          args=(vg, mask, jnp.asarray(mu, x.dtype)))
        frames.append((params["x"], params["z"] * mask))
        used.append(float(mu))
        if len(used) < len(mus):
            continue
        if z_tol is None or float(jnp.max(jnp.abs(params["z"] * mask))) < z_tol or extra >= max_extra:
            break
        mus.append(mus[-1] * growth if mus[-1] > 0 else 1e-6)
        extra += 1
    return params["x"], params["z"] * mask, frames, used


class EscapeConfig(NamedTuple):
    """Schedule of the escape step and of its comparison arms (see :func:`escape_vs_control`)."""

    mu_grid: tuple = (0.01, 3.0, 6)   # mu / mu* from 0.01 to 3 in 6 geometric steps (after mu = 0)
    steps_per_mu: int = 30            # L-BFGS iterations per penalty value
    final_steps: int = 80             # L-BFGS in d dimensions after z is dropped
    z0_scale: float = 0.1             # initial lift: N(0, (z0_scale std X)^2)
    z_tol: float = 1e-3               # keep raising mu until max |z| < z_tol std X


ARMS = ("pp", "random", "all", "jitter", "restart")


def mu_schedule(pressure_values, mu_grid=EscapeConfig().mu_grid) -> list:
    """Penalties ``[0, mu* g_1, ..., mu* g_k]`` with mu* = max_n(-pressure_n) / 2 (eq. 6).

    mu > mu* makes z = 0 stable point by point only (the diagonal test); the joint
    condition, mu > -lambda_min(H_SS) / 2 on the lifted set S, can need more, which is
    why :func:`pressured_points` keeps raising mu until z is back in the plane.
    """
    m = max(float(jnp.max(-jnp.asarray(pressure_values))) / 2, 1e-12)
    return [0.0] + list(m * np.geomspace(*mu_grid))


def restarted_minimize(vg: Callable, x0, n_stages: int, steps: int, final_steps: int, memory: int = 10):
    """L-BFGS restarted ``n_stages`` times (``steps`` each, a fresh memory each time), then ``final_steps``.

    The escape step's restarts without its extra dimension (the "restart" and "jitter" arms).
    """
    _pos_int("n_stages", n_stages)
    x = jnp.asarray(x0)
    for _ in range(n_stages):
        x, _ = minimize(vg, x, steps, memory)
    x, _ = minimize(vg, x, final_steps, memory)
    return x


def escape_vs_control(vg: Callable, x_base, key, pressure_values, cfg: EscapeConfig = EscapeConfig(),
                      arms=("pp",), energy_fn: Callable | None = None):
    """The escape step of eqs. (5)-(6) and its comparison arms, all from ``x_base``.

    Arms (each ends with ``cfg.final_steps`` L-BFGS iterations in d dimensions):

    * ``"pp"``: the pressured points (``pressure < 0``) get a free z from a random lift;
    * ``"random"``: a random mask with as many points as ``"pp"`` lifts, the same z0;
    * ``"all"``: every point gets a free z (anneal all of 3-D back to 2-D);
    * ``"jitter"``: the pressured points jittered in the plane by the same scale, then the
      same number of L-BFGS restarts as ``"pp"`` ran penalty stages;
    * ``"restart"``: those restarts alone, from ``x_base``.

    The **control** continues L-BFGS from ``x_base`` (one memory) for the largest budget
    (iterations) that any arm used, so that no arm has more iterations than the control.

    Args:
        vg: objective from :func:`make_objective`; x_base: converged embedding ``(N, d)``.
        key: PRNG key for the lift, the random mask and the jitter.
        pressure_values: ``(N,)`` pressures of ``x_base`` (:func:`pressure`).
        arms: a subset of :data:`ARMS`.
        energy_fn: optional ``E(X) -> float`` (e.g. a float64 evaluation) applied to every result.

    Returns:
        dict with ``x`` (``{arm: X}``, including ``"control"`` and ``"base"``), ``budget``
        (``{arm: iterations}``), ``E`` (``{arm: value}`` when ``energy_fn`` is given),
        ``n_lifted``, ``mu_star``, ``mask``, ``z0`` (masked lift of ``"pp"``), ``frames`` and
        ``mus_used`` of ``"pp"``.
    """
    arms = tuple(arms)
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {arms!r}")
    x_base = jnp.asarray(x_base)
    n, d = x_base.shape
    pi = jnp.asarray(pressure_values)
    if pi.shape != (n,):
        raise ValueError(f"pressure_values must have shape ({n},), got {pi.shape}")
    mask = (pi < 0).astype(x_base.dtype)
    n_lift = int(mask.sum())
    sd = float(jnp.std(x_base))
    k_z, k_perm, k_jit = jax.random.split(key, 3)
    z0 = cfg.z0_scale * sd * jax.random.normal(k_z, (n,), x_base.dtype)
    mus = mu_schedule(pi, cfg.mu_grid)
    out = {"x": {"base": x_base}, "budget": {}, "n_lifted": n_lift, "mu_star": float(jnp.max(-pi)) / 2,
           "mask": mask, "z0": z0 * mask, "frames": [], "mus_used": []}
    n_stages = len(mus)

    def lifted(m):
        xe, _, frames, used = pressured_points(vg, x_base, m, z0, mus, cfg.steps_per_mu,
                                               z_tol=cfg.z_tol * sd)
        xe, _ = minimize(vg, xe, cfg.final_steps)
        return xe, frames, used

    if "pp" in arms:
        xe, frames, used = lifted(mask)
        out["x"]["pp"], out["frames"], out["mus_used"] = xe, frames, used
        out["budget"]["pp"] = len(used) * cfg.steps_per_mu + cfg.final_steps
        n_stages = len(used)
    if "random" in arms:
        perm = jax.random.permutation(k_perm, n)
        m_r = jnp.zeros(n, x_base.dtype).at[perm[:n_lift]].set(1.0)
        xe, _, used = lifted(m_r)
        out["x"]["random"] = xe
        out["budget"]["random"] = len(used) * cfg.steps_per_mu + cfg.final_steps
    if "all" in arms:
        xe, _, used = lifted(jnp.ones(n, x_base.dtype))
        out["x"]["all"] = xe
        out["budget"]["all"] = len(used) * cfg.steps_per_mu + cfg.final_steps
    for arm in ("jitter", "restart"):
        if arm in arms:
            x0 = x_base
            if arm == "jitter":
                x0 = x_base + cfg.z0_scale * sd * jax.random.normal(k_jit, (n, d), x_base.dtype) * mask[:, None]
            out["x"][arm] = restarted_minimize(vg, x0, n_stages, cfg.steps_per_mu, cfg.final_steps)
            out["budget"][arm] = n_stages * cfg.steps_per_mu + cfg.final_steps
    budget = max(out["budget"].values())
    out["x"]["control"], _ = minimize(vg, x_base, budget)
    out["budget"]["control"] = budget
    if energy_fn is not None:
        out["E"] = {a: float(energy_fn(x)) for a, x in out["x"].items()}
    return out


def kl_from_objective(e, p) -> float:
    """KL(P||Q) = E + sum P log P for the s-SNE / t-SNE objective at lam = 1 (float64)."""
    p = np.asarray(p, np.float64)
    nz = p[p > 0]
    return float(e) + float(np.sum(nz * np.log(nz)))


def objective_np(x, p, kind: str, lam: float = 1.0, wneg=None) -> float:
    """Float64 NumPy reference of :func:`objective` (dense loops-free, for final evaluation)."""
    _check_kind(kind)
    x = np.asarray(x, np.float64)
    p = np.asarray(p, np.float64)
    n = x.shape[0]
    diff = x[:, None, :] - x[None, :, :]
    d = np.einsum("nmk,nmk->nm", diff, diff)
    k = 1.0 / (1.0 + d) if kind == "tsne" else np.exp(-d)
    np.fill_diagonal(k, 0.0)
    attract = np.sum(p * np.log1p(d)) if kind == "tsne" else np.sum(p * d)
    if kind == "ee":
        w = 1.0 / n**2 if wneg is None else np.asarray(wneg, np.float64)
        return float(attract + lam * np.sum(w * k))
    return float(attract + lam * np.log(np.sum(k)))
