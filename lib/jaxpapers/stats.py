"""Small statistics toolkit: rank correlations, paired bootstrap, Poisson maximum likelihood.

* :func:`spearman` / :func:`spearman_matrix`: Spearman rank correlation (ties get
  average ranks), e.g. between the per-seed accuracies of two stress tests
  (D'Amour et al. 2022 compare how seeds *rank* across stress tests).
* :func:`paired_bootstrap` / :func:`paired_bootstrap_matrix`: percentile
  bootstrap confidence intervals for the accuracy difference of two models
  scored on the *same* test items (resampling items, so the pairing is kept).
* :func:`poisson_nll`, :func:`poisson_fisher`, :func:`fit_poisson`: Poisson
  likelihood of counts ``y`` under a mean ``lam(theta)`` and a damped
  Fisher-scoring (Levenberg–Marquardt) fit that is pure, so ``jax.vmap`` runs
  many multi-start fits at once.

Every random draw takes an explicit PRNG key.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpapers._validate import positive_int as _pos_int


def rankdata(x) -> np.ndarray:
    """Ranks ``1..n`` of a 1-D array along its axis, ties sharing their average rank (float64)."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    # average the ranks of tied values
    uniq, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    return (sums / counts)[inverse]


def spearman(a, b) -> float:
    """Spearman rank correlation of two 1-D arrays of equal length ``n >= 2``.

    The Pearson correlation of their (average-tie) ranks; ``nan`` when either
    array is constant.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {a.shape} and {b.shape}")
    if a.shape[0] < 2:
        raise ValueError("spearman needs at least 2 values")
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    den = np.sqrt(np.sum(ra**2) * np.sum(rb**2))
    return float(np.sum(ra * rb) / den) if den > 0 else float("nan")


def spearman_matrix(values) -> np.ndarray:
    """Spearman correlations between the rows of ``values`` (shape ``(k, n)``) -> ``(k, k)``."""
    v = np.asarray(values)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"values must have shape (k, n) with n >= 2, got {v.shape}")
    k = v.shape[0]
    out = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            out[i, j] = out[j, i] = spearman(v[i], v[j])
    return out


def numpy_rng(key) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key (deterministic; one compile for any later shape).

    Host-side resampling (bootstrap, permutations) would otherwise recompile
    ``jax.random`` for every new array shape.
    """
    seed = np.asarray(jax.random.randint(key, (4,), 0, np.iinfo(np.int32).max))
    return np.random.default_rng([int(v) for v in seed])


def bootstrap_indices(key, n_boot: int, n: int) -> np.ndarray:
    """``(n_boot, n)`` indices, each row ``n`` draws with replacement from ``range(n)``."""
    _pos_int("n_boot", n_boot)
    _pos_int("n", n)
    return numpy_rng(key).integers(0, n, size=(n_boot, n))


def _check_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def paired_bootstrap_matrix(correct, key, *, n_boot: int = 1000, level: float = 0.95):
    """Paired bootstrap of accuracy differences between every pair of models.

    Args:
        correct: ``(models, items)`` array of 0/1 (or any per-item scores), all
            models scored on the same items.
        key: PRNG key for the resampling (one set of resamples shared by all pairs).
        n_boot: bootstrap resamples.
        level: confidence level of the percentile interval.

    Returns:
        ``(diff, lo, hi)``, each ``(models, models)``: ``diff[a, b] = mean(correct[a])
        - mean(correct[b])`` and its percentile interval over resampled item sets.
        A pair *differs significantly* when ``lo > 0`` or ``hi < 0``.
    """
    c = np.asarray(correct, np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"correct must have shape (models, items >= 2), got {c.shape}")
    _check_level(level)
    n = c.shape[1]
    idx = bootstrap_indices(key, n_boot, n)
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
    acc = c @ counts.T / n                                      # (models, n_boot)
    d = acc[:, None, :] - acc[None, :, :]                       # (models, models, n_boot)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha], axis=-1)
    mean = c.mean(axis=1)
    return mean[:, None] - mean[None, :], lo, hi


def paired_bootstrap(correct_a, correct_b, key, *, n_boot: int = 1000, level: float = 0.95):
    """Paired bootstrap for two models on the same items: ``(diff, lo, hi)`` of ``acc_a - acc_b``."""
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must be 1-D of equal length, got {a.shape} and {b.shape}")
    d, lo, hi = paired_bootstrap_matrix(np.stack([a, b]), key, n_boot=n_boot, level=level)
    return float(d[0, 1]), float(lo[0, 1]), float(hi[0, 1])


def permutation_null_std(correct, key, *, n_perm: int = 500):
    """Seed spread expected when seeds are exchangeable item by item (a null for underspecification).

    For each resample the 0/1 scores of every item are shuffled among the models,
    independently per item: every item keeps its accuracy (its difficulty), but
    no model keeps a systematic advantage. Returns the ``(n_perm,)`` standard
    deviations (``ddof=1``) of the models' accuracies under this null; compare the
    observed ``std`` with them. This controls for the ``p (1 - p)`` growth of the
    spread at lower accuracy.

    Args:
        correct: ``(models, items)`` 0/1 scores (``models >= 2``).
    """
    c = np.asarray(correct, np.float64)
    if c.ndim != 2 or c.shape[0] < 2:
        raise ValueError(f"correct must have shape (models >= 2, items), got {c.shape}")
    _pos_int("n_perm", n_perm)
    order = np.argsort(numpy_rng(key).random((n_perm,) + c.shape), axis=1)
    shuffled = np.take_along_axis(np.broadcast_to(c, order.shape), order, axis=1)  # (n_perm, models, items)
    return shuffled.mean(axis=2).std(axis=1, ddof=1)


def significant_fraction(lo, hi) -> float:
    """Fraction of distinct pairs (upper triangle) whose interval ``[lo, hi]`` excludes zero."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    if lo.shape != hi.shape or lo.ndim != 2 or lo.shape[0] != lo.shape[1] or lo.shape[0] < 2:
        raise ValueError(f"lo and hi must be equal square matrices of size >= 2, got {lo.shape}, {hi.shape}")
    iu = np.triu_indices(lo.shape[0], 1)
    return float(np.mean((lo[iu] > 0) | (hi[iu] < 0)))


# ----------------------------------------------------------------------------------------
# Poisson maximum likelihood
# ----------------------------------------------------------------------------------------


def poisson_nll(lam, y, weights=None):
    """Poisson negative log-likelihood of counts ``y`` under means ``lam``, up to a constant.

    Returns ``sum(w * (lam - y - y log(lam / y)))`` (``w = weights``, default 1; use
    0/1 weights to score only an observation window) (zero for a perfect fit; equals
    ``sum(lam - y log lam + log y!)`` minus the saturated model's value). Written
    as ``y (u - log1p(u))`` with ``u = lam / y - 1`` so that it stays accurate in
    float32 for large counts; terms with ``y = 0`` contribute ``lam``.
    """
    lam = jnp.maximum(jnp.asarray(lam), 1e-30)
    y = jnp.asarray(y, lam.dtype)
    u = lam / jnp.maximum(y, 1.0) - 1.0
    dev = jnp.where(y > 0, y * (u - jnp.log1p(u)), lam)
    return jnp.sum(dev if weights is None else jnp.asarray(weights, lam.dtype) * dev)


def poisson_fisher(jac, lam):
    """Fisher information ``J^T diag(1/lam) J`` of Poisson counts with means ``lam(theta)``.

    ``jac``: ``(n, p)`` Jacobian ``d lam / d theta``; ``lam``: ``(n,)``. Returns ``(p, p)``.
    """
    jac, lam = jnp.asarray(jac), jnp.asarray(lam)
    if jac.ndim != 2 or lam.shape != jac.shape[:1]:
        raise ValueError(f"jac must be (n, p) and lam (n,), got {jac.shape} and {lam.shape}")
    return jac.T @ (jac / jnp.maximum(lam, 1e-30)[:, None])


def fit_poisson(mean_fn: Callable, theta0, y, *, steps: int = 100, lower=None, upper=None,
                prior_mean=None, prior_precision=None, damping: float = 1e-2):
    """Maximise a Poisson likelihood by damped Fisher scoring (Levenberg–Marquardt).

    Each step solves ``(F + P + mu diag(F + P)) delta = score - P (theta - m)``, with
    ``F`` the Fisher information (:func:`poisson_fisher`), ``P`` an optional diagonal
    Gaussian prior precision around ``m``; parameters sitting on a bound of the box
    ``[lower, upper]`` whose step points outwards are held fixed (the system is
    re-solved for the others), and the step is clipped to the box and accepted only if the objective decreases (then
    ``mu /= 3``, else ``mu *= 4``). Pure and fixed-length, so ``jax.vmap`` it over
    starting points.

    Args:
        mean_fn: ``theta (p,) -> lam (n,)``, positive Poisson means.
        theta0: ``(p,)`` starting point.
        y: ``(n,)`` observed counts.
        steps: number of iterations (static).
        lower, upper: optional ``(p,)`` box bounds (use equal bounds to fix a parameter).
        prior_mean, prior_precision: optional ``(p,)`` Gaussian prior (MAP fit).
        damping: initial ``mu``.

    Returns:
        ``(theta, objective)``: the final ``(p,)`` parameters and the ``(steps,)``
        history of the objective ``poisson_nll + prior penalty`` after each step.
    """
    _pos_int("steps", steps)
    theta0 = jnp.asarray(theta0, jnp.float32)
    if theta0.ndim != 1:
        raise ValueError(f"theta0 must be 1-D, got shape {theta0.shape}")
    p = theta0.shape[0]

    def vec(name, v, fill):
        if v is None:
            return jnp.full((p,), fill, jnp.float32)
        v = jnp.asarray(v, jnp.float32)
        if v.shape != (p,):
            raise ValueError(f"{name} must have shape ({p},), got {v.shape}")
        return v

    lower, upper = vec("lower", lower, -jnp.inf), vec("upper", upper, jnp.inf)
    m, prec = vec("prior_mean", prior_mean, 0.0), vec("prior_precision", prior_precision, 0.0)
    if damping <= 0:
        raise ValueError(f"damping must be positive, got {damping}")
    y = jnp.asarray(y, jnp.float32)

    def objective(th):
        return poisson_nll(mean_fn(th), y) + 0.5 * jnp.sum(prec * (th - m) ** 2)

    def body(carry, _):
        th, val, mu = carry
        lam = jnp.maximum(mean_fn(th), 1e-30)
        J = jax.jacfwd(mean_fn)(th)
        A = poisson_fisher(J, lam) + jnp.diag(prec)
        g = J.T @ (y / lam - 1.0) - prec * (th - m)
        M = A + mu * jnp.diag(jnp.diag(A)) + 1e-9 * jnp.eye(p)
        step = jnp.linalg.solve(M, g)
        # active set: parameters at a bound whose step points outwards are held fixed
        free = ~(((th <= lower) & (step < 0)) | ((th >= upper) & (step > 0)))
        Mf = jnp.where(free[:, None] & free[None, :], M, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
        step = jnp.where(free, jnp.linalg.solve(Mf, jnp.where(free, g, 0.0)), 0.0)
        cand = jnp.clip(th + step, lower, upper)
        cval = objective(cand)
        ok = jnp.isfinite(cval) & (cval < val)
        th, val = jnp.where(ok, cand, th), jnp.where(ok, cval, val)
        mu = jnp.clip(jnp.where(ok, mu / 3, mu * 4), 1e-9, 1e9)
        return (th, val, mu), val

    th0 = jnp.clip(theta0, lower, upper)
    carry = (th0, objective(th0), jnp.asarray(damping, jnp.float32))
    (th, _, _), hist = jax.lax.scan(body, carry, None, length=int(steps))
    return th, hist
