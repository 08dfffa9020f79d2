"""CMA-ES over a population whose fitness is **one** jitted, vmapped JAX call.

Why the maintained ``cma`` package (pycma, N. Hansen) rather than a hand-written
evolution strategy: CMA-ES's covariance, step-size (CSA) and restart logic is
subtle, and pycma is the reference implementation, tested for two decades; the
expensive part, the fitness of the whole population, stays in JAX. The loop is::

    ask (popsize, dim) -> fitness_fn(population, key_g) (one jitted call) -> tell

Each generation ``g`` gets its own key ``fold_in(key, g)`` shared by the whole
population (common random numbers: every candidate sees the same episodes, so
their ranking is not blurred by episode noise). ``cma`` is seeded through its
``seed`` option (it seeds NumPy's global generator), so a run is reproducible.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ESResult(NamedTuple):
    """``best``: best candidate seen, ``(dim,)``; ``mean``: final CMA mean, ``(dim,)``;
    ``history``: dict of per-generation arrays ``best``/``median``/``worst`` fitness
    ``(generations,)``, ``sigma`` ``(generations,)``, ``mean`` ``(generations, dim)``."""

    best: np.ndarray
    best_fitness: float
    mean: np.ndarray
    history: dict


def cma_minimize(fitness_fn: Callable, x0, sigma0: float, key, *, generations: int, popsize: int,
                 seed: int = 1, progress: bool = False, jit: bool = True, options: dict | None = None) -> ESResult:
    """Minimise ``fitness_fn`` with CMA-ES.

    Args:
        fitness_fn: ``fitness_fn(population: (popsize, dim) float32, key) -> (popsize,)``;
            write it with ``jax.vmap`` over candidates; it is jitted once here.
        x0: initial mean, ``(dim,)``.
        sigma0: initial step size (> 0).
        key: PRNG key; generation ``g`` uses ``jax.random.fold_in(key, g)``.
        generations, popsize: static sizes (``popsize >= 2``).
        seed: pycma's seed (a positive integer).
        progress: show a tqdm bar over generations.
        options: extra pycma options.

    Raises:
        ValueError: bad ``x0``, ``sigma0``, ``generations``, ``popsize`` or ``seed``.
    """
    import cma

    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 1 or x0.size < 2:
        raise ValueError(f"x0 must be a 1-D vector with at least 2 entries, got shape {x0.shape}")
    if not np.isfinite(sigma0) or sigma0 <= 0:
        raise ValueError(f"sigma0 must be a positive number, got {sigma0}")
    for name, v, lo in (("generations", generations, 1), ("popsize", popsize, 2), ("seed", seed, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    opts = {"popsize": int(popsize), "seed": int(seed), "verbose": -9, "verb_log": 0, "verb_disp": 0,
            "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9, "maxiter": 10**9}
    opts.update(options or {})
    es = cma.CMAEvolutionStrategy(x0, float(sigma0), opts)
    fit = jax.jit(fitness_fn) if jit else fitness_fn
    hist = {"best": [], "median": [], "worst": [], "sigma": [], "mean": []}
    best, best_f = x0.copy(), np.inf
    gens = range(int(generations))
    if progress:
        from tqdm.auto import tqdm

        gens = tqdm(gens, desc="CMA-ES", unit="gen")
    for g in gens:
        pop = np.asarray(es.ask(), dtype=np.float64)
        f = np.asarray(fit(jnp.asarray(pop, jnp.float32), jax.random.fold_in(key, g)), dtype=np.float64)
        if f.shape != (popsize,):
            raise ValueError(f"fitness_fn must return shape ({popsize},), got {f.shape}")
        f = np.where(np.isfinite(f), f, np.inf if not np.isfinite(f).any() else np.nanmax(f[np.isfinite(f)]) + 1e6)
        es.tell(list(pop), list(f))
        i = int(np.argmin(f))
        if f[i] < best_f:
            best, best_f = pop[i].copy(), float(f[i])
        for name, v in (("best", f.min()), ("median", np.median(f)), ("worst", f.max()), ("sigma", es.sigma),
                        ("mean", np.asarray(es.mean))):
            hist[name].append(v)
    history = {k: np.asarray(v) for k, v in hist.items()}
    return ESResult(best=best, best_fitness=best_f, mean=np.asarray(es.mean), history=history)
