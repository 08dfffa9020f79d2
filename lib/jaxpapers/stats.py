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


def match_total(mean_fn: Callable, total, x0, *, steps: int = 3, lower=-jnp.inf, upper=jnp.inf):
    """Moment match of a log-scale parameter: ``x`` with ``sum(mean_fn(x)) = total``.

    For a mean that is (nearly) proportional to ``exp(x)`` -- an initial prevalence, a
    rate's level -- each step sets ``x <- clip(x + log(total / sum(mean_fn(x))), lower,
    upper)``; one step is exact for an exactly proportional mean. Pure (vmap it over
    starting points). A multi-start fit uses it to put every start's expected total
    count on the observed one, as a practitioner would.

    Args:
        mean_fn: ``x (scalar) -> lam (n,)``, positive means.
        total: the target sum (``> 0``).
        x0: the starting value of ``x``.
        steps: fixed number of updates (static).
        lower, upper: bounds on ``x``.

    Returns:
        ``x`` (a scalar).
    """
    _pos_int("steps", steps)
    x = jnp.asarray(x0, jnp.float32)
    for _ in range(int(steps)):
        x = jnp.clip(x + jnp.log(total / jnp.sum(mean_fn(x))), lower, upper)
    return x


def profile_poisson_1d(mean_fn: Callable, y, x0, *, weights=None, steps: int = 6):
    """Profile a scalar nuisance parameter out of a Poisson likelihood (Fisher scoring).

    Starts from ``x0`` moved by the moment match ``log(sum w y / sum w lam)`` (see
    :func:`match_total`), then takes ``steps`` Fisher-scoring steps
    ``x <- x + sum(w dlam (y / lam - 1)) / sum(w dlam^2 / lam)`` (``dlam = d lam / d x``
    by forward mode). Pure and fixed-length, so ``jax.vmap`` it over a grid of the other
    parameters.

    Args:
        mean_fn: ``x (scalar) -> lam (n,)``, positive Poisson means.
        y: ``(n,)`` counts.
        x0: starting value.
        weights: optional ``(n,)`` 0/1 weights (score an observation window only).
        steps: Fisher-scoring steps (static).

    Returns:
        ``(nll, x, last_step)``: the profiled :func:`poisson_nll`, the maximiser, and the
        size of the last step ``|x_k - x_{k-1}|`` (check it is small: converged).
    """
    _pos_int("steps", steps)
    y = jnp.asarray(y, jnp.float32)
    w = jnp.ones_like(y) if weights is None else jnp.asarray(weights, jnp.float32)
    x = jnp.asarray(x0, jnp.float32)
    x = x + jnp.log(jnp.sum(w * y) / jnp.sum(w * mean_fn(x)))
    last = jnp.zeros_like(x)
    for _ in range(int(steps)):
        m, dm = jax.jvp(mean_fn, (x,), (jnp.ones_like(x),))
        m = jnp.maximum(m, 1e-30)
        last = jnp.sum(w * dm * (y / m - 1)) / jnp.sum(w * dm**2 / m)
        x = x + last
    return poisson_nll(mean_fn(x), y, w), x, jnp.abs(last)


def matched_iid_subset(correct, target: float) -> np.ndarray:
    """Indices of test items whose mean accuracy over models is about ``target`` (a fraction).

    A control at matched accuracy for a stress test: it keeps every item some model
    gets wrong (hardest first) and pads them with items every model gets right until the
    mean accuracy is ``target``; when ``target`` is below the missed items' own mean it
    keeps the hardest ``k`` items (at least 2). The subset is usually much smaller than
    the stress test: compare statistics that do not depend on the number of items (the
    permutation ratio of :func:`permutation_null_std`), or mind the lower power.

    Args:
        correct: ``(models, items)`` 0/1 scores on the i.i.d. test set.
        target: the stress test's mean accuracy, in ``(0, 1]``.
    """
    c = np.asarray(correct, np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"correct must have shape (models, items >= 2), got {c.shape}")
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    q = c.mean(0)
    order = np.argsort(q, kind="stable")  # hardest first
    hard, easy = order[q[order] < 1], order[q[order] == 1]
    if len(hard) == 0:
        return order
    if target <= q[hard].mean():  # harder than all missed items together: the hardest k
        k = int(np.searchsorted(np.cumsum(q[order]) / np.arange(1, len(q) + 1), target)) + 1
        return order[: max(k, 2)]
    if target >= 1:
        return order
    m = int(len(hard) * (q[hard].mean() - target) / (target - 1))  # easy items to add
    return np.concatenate([hard, easy[: min(max(m, 0), len(easy))]])


def _ranks(x, axis=-1):
    from scipy import stats as sps

    return sps.rankdata(x, axis=axis)


def _corr_last(a, b):
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def rank_reliability(correct_sets, key, *, n_splits: int = 20, n_boot: int = 200):
    """Reliability-corrected rank correlations of model accuracies between test sets.

    A test set's ranking of the models is itself noisy (finitely many items). Its
    *split-half reliability* is the Spearman correlation of the models' accuracies on two
    random halves of its items, stepped up to the full length by Spearman--Brown,
    ``2 r / (1 + r)``, and averaged over ``n_splits`` random splits. Two tests whose
    rankings agreed perfectly in truth would still correlate only about
    ``sqrt(rel_a rel_b)``; the *corrected* correlation ``rho_ab / sqrt(rel_a rel_b)``
    (Spearman's disattenuation) estimates the agreement of the noise-free rankings.

    The seeds (models) are resampled ``n_boot`` times with replacement, recomputing
    correlations and reliabilities, for bootstrap intervals.

    Args:
        correct_sets: a sequence of ``(models, items_k)`` 0/1 arrays, the same models
            (rows) scored on each test set.
        key: PRNG key (item splits and model resamples).
        n_splits: random half splits per test set.
        n_boot: bootstrap resamples of the models.

    Returns:
        dict with ``rho`` ``(k, k)`` observed Spearman correlations, ``rel`` ``(k,)``
        reliabilities, ``corrected`` ``(k, k)`` (``nan`` where a reliability is ``<= 0``),
        and the bootstrap replicates ``rho_boot`` ``(n_boot, k, k)``, ``rel_boot``
        ``(n_boot, k)``, ``corrected_boot`` ``(n_boot, k, k)``.
    """
    sets = [np.asarray(c, np.float64) for c in correct_sets]
    if not sets or any(c.ndim != 2 or c.shape[1] < 4 for c in sets):
        raise ValueError("correct_sets must be (models, items >= 4) arrays")
    S = sets[0].shape[0]
    if S < 3 or any(c.shape[0] != S for c in sets):
        raise ValueError(f"every set must score the same models (>= 3), got {[c.shape for c in sets]}")
    _pos_int("n_splits", n_splits)
    _pos_int("n_boot", n_boot)
    rng = numpy_rng(key)
    acc = np.stack([c.mean(1) for c in sets])                     # (k, S)
    halves = []
    for c in sets:
        n = c.shape[1]
        h = np.empty((n_splits, 2, S))
        for s in range(n_splits):
            p = rng.permutation(n)
            h[s, 0], h[s, 1] = c[:, p[: n // 2]].mean(1), c[:, p[n // 2:]].mean(1)
        halves.append(h)
    halves = np.stack(halves)                                     # (k, splits, 2, S)
    boot = rng.integers(0, S, size=(n_boot, S))
    idx = np.concatenate([np.arange(S)[None], boot])              # row 0: the data as observed

    def reliability(h):                                           # h (k, splits, 2, B, S)
        r = _corr_last(_ranks(h[:, :, 0]), _ranks(h[:, :, 1]))    # (k, splits, B)
        return np.nanmean(2 * r / (1 + r), axis=1)                # (k, B)

    rel = reliability(halves[..., idx])                           # (k, B + 1)
    ra = _ranks(acc[:, idx])                                      # (k, B + 1, S)
    rho = _corr_last(ra[:, None], ra[None, :])                    # (k, k, B + 1)
    with np.errstate(invalid="ignore"):
        ceil = np.sqrt(np.where(rel > 0, rel, np.nan))
        corr = rho / (ceil[:, None] * ceil[None, :])
    k = len(sets)
    eye = np.eye(k, dtype=bool)[..., None]
    rho, corr = np.where(eye, 1.0, rho), np.where(eye, 1.0, corr)
    return dict(rho=rho[..., 0], rel=rel[:, 0], corrected=corr[..., 0],
                rho_boot=np.moveaxis(rho[..., 1:], -1, 0), rel_boot=rel[:, 1:].T,
                corrected_boot=np.moveaxis(corr[..., 1:], -1, 0))
