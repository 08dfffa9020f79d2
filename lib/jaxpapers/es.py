"""CMA-ES over a population whose fitness is **one** jitted, vmapped JAX call.

Why the maintained ``cma`` package (pycma, N. Hansen) rather than a hand-written
evolution strategy: CMA-ES's covariance, step-size (CSA) and restart logic is
subtle, and pycma is the reference implementation, tested for two decades; the
expensive part, the fitness of the whole population, stays in JAX. The loop is::

    ask (popsize, dim) -> fitness_fn(population, key_g) (one jitted call) -> tell

Each generation ``g`` gets its own key ``fold_in(key, g)`` shared by the whole
population (common random numbers: every candidate sees the same episodes, so
their ranking is not blurred by episode noise). ``cma`` is seeded through its
``seed``: each run draws its samples from its own ``numpy.random.RandomState(seed)`` (the
numbers pycma's ``seed`` option would give, without touching NumPy's global generator), so a
run is reproducible and several runs can be stepped side by side.

``cma_minimize_many`` runs several independent CMA-ES runs in lockstep, with one jitted call
per generation for all their populations: a claim about what CMA-ES meta-training finds is
decided over several runs, not on one.
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


def _check(x0, sigma0, generations, popsize, seed) -> np.ndarray:
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 1 or x0.size < 2:
        raise ValueError(f"x0 must be a 1-D vector with at least 2 entries, got shape {x0.shape}")
    if not np.isfinite(sigma0) or sigma0 <= 0:
        raise ValueError(f"sigma0 must be a positive number, got {sigma0}")
    for name, v, lo in (("generations", generations, 1), ("popsize", popsize, 2), ("seed", seed, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return x0


def _strategy(x0, sigma0, popsize, seed, options):
    import cma

    opts = {"popsize": int(popsize), "seed": int(seed), "verbose": -9, "verb_log": 0, "verb_disp": 0,
            "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9, "maxiter": 10**9,
            "randn": np.random.RandomState(int(seed)).randn}  # this run's own generator
    opts.update(options or {})
    return cma.CMAEvolutionStrategy(x0, float(sigma0), opts)


class _Run:
    """One CMA-ES run's ask/tell state and its history."""

    def __init__(self, x0, sigma0, popsize, seed, options):
        self.es, self.popsize = _strategy(x0, sigma0, popsize, seed, options), int(popsize)
        self.best, self.best_f = x0.copy(), np.inf
        self.hist = {"best": [], "median": [], "worst": [], "sigma": [], "mean": []}

    def ask(self) -> np.ndarray:
        self.pop = np.asarray(self.es.ask(), dtype=np.float64)
        return self.pop

    def tell(self, f) -> None:
        f = np.asarray(f, dtype=np.float64)
        if f.shape != (self.popsize,):
            raise ValueError(f"fitness_fn must return shape ({self.popsize},), got {f.shape}")
        f = np.where(np.isfinite(f), f, np.inf if not np.isfinite(f).any() else np.nanmax(f[np.isfinite(f)]) + 1e6)
        self.es.tell(list(self.pop), list(f))
        i = int(np.argmin(f))
        if f[i] < self.best_f:
            self.best, self.best_f = self.pop[i].copy(), float(f[i])
        for name, v in (("best", f.min()), ("median", np.median(f)), ("worst", f.max()), ("sigma", self.es.sigma),
                        ("mean", np.asarray(self.es.mean))):
            self.hist[name].append(v)

    def result(self) -> ESResult:
        return ESResult(best=self.best, best_fitness=self.best_f, mean=np.asarray(self.es.mean),
                        history={k: np.asarray(v) for k, v in self.hist.items()})


def _generations(generations, progress, desc="CMA-ES"):
    gens = range(int(generations))
    if progress:
        from tqdm.auto import tqdm

        gens = tqdm(gens, desc=desc, unit="gen")
    return gens


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
    x0 = _check(x0, sigma0, generations, popsize, seed)
    run = _Run(x0, sigma0, popsize, seed, options)
    fit = jax.jit(fitness_fn) if jit else fitness_fn
    for g in _generations(generations, progress):
        pop = run.ask()
        run.tell(fit(jnp.asarray(pop, jnp.float32), jax.random.fold_in(key, g)))
    return run.result()


def cma_minimize_many(fitness_fn: Callable, x0s, sigma0: float, keys, *, generations: int, popsize: int,
                      seeds, progress: bool = False, options: dict | None = None) -> list[ESResult]:
    """Several independent CMA-ES runs, stepped side by side: run ``r`` is
    ``cma_minimize(fitness_fn, x0s[r], sigma0, keys[r], seed=seeds[r], ...)``, but each generation
    evaluates the populations of all runs in **one** jitted call (``fitness_fn`` vmapped over runs).

    Args:
        fitness_fn: as for :func:`cma_minimize`.
        x0s: initial means, ``(runs, dim)``.
        sigma0: initial step size (> 0), shared.
        keys: one PRNG key per run, ``(runs, ...)`` (e.g. ``jax.random.split(key, runs)``); run ``r``'s
            generation ``g`` uses ``jax.random.fold_in(keys[r], g)``.
        generations, popsize: as for :func:`cma_minimize`, shared by the runs.
        seeds: pycma seeds, one positive integer per run.
        progress: show a tqdm bar over generations.
        options: extra pycma options, shared.

    Returns:
        one :class:`ESResult` per run, in order.

    Raises:
        ValueError: bad ``x0s``, ``keys`` or ``seeds`` (count or values), ``sigma0``, ``generations``
        or ``popsize``.
    """
    x0s = np.asarray(x0s, dtype=np.float64)
    if x0s.ndim != 2 or x0s.shape[0] < 1:
        raise ValueError(f"x0s must be (runs, dim) with at least one run, got shape {x0s.shape}")
    seeds = list(seeds)
    n_keys = len(keys)
    if len(seeds) != x0s.shape[0] or n_keys != x0s.shape[0]:
        raise ValueError(f"x0s has {x0s.shape[0]} runs but there are {len(seeds)} seeds and {n_keys} keys")
    runs = [_Run(_check(x0, sigma0, generations, popsize, s), sigma0, popsize, s, options) for x0, s in zip(x0s, seeds)]
    keys = keys if isinstance(keys, jax.Array) else jnp.stack(list(keys))
    fit = jax.jit(lambda pops, g: jax.vmap(lambda p, k: fitness_fn(p, jax.random.fold_in(k, g)))(pops, keys))
    for g in _generations(generations, progress):
        pops = np.stack([r.ask() for r in runs])
        f = np.asarray(fit(jnp.asarray(pops, jnp.float32), g))
        if f.shape != (len(runs), int(popsize)):
            raise ValueError(f"fitness_fn must return shape ({popsize},), got {f.shape[1:]}")
        for r, fr in zip(runs, f):
            r.tell(fr)
    return [r.result() for r in runs]
