import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import es
from jaxpapers.es import cma_minimize


def sphere(pop, key):
    return jnp.sum((pop - 1.5) ** 2, axis=1)


def test_minimises_shifted_sphere():
    r = cma_minimize(sphere, np.zeros(5), 0.5, jax.random.PRNGKey(0), generations=80, popsize=10)
    np.testing.assert_allclose(r.mean, 1.5, atol=1e-2)
    assert r.best_fitness < 1e-3
    assert r.history["best"].shape == (80,) and r.history["mean"].shape == (80, 5)
    assert r.history["median"][-1] < r.history["median"][0]


def test_rosenbrock():
    def rosen(pop, key):
        return jnp.sum(100 * (pop[:, 1:] - pop[:, :-1] ** 2) ** 2 + (1 - pop[:, :-1]) ** 2, axis=1)
    r = cma_minimize(rosen, np.zeros(4), 0.3, jax.random.PRNGKey(0), generations=400, popsize=12)
    np.testing.assert_allclose(r.best, 1.0, atol=5e-2)


def test_fitness_sees_population_and_per_generation_keys():
    seen = []

    def fit(pop, key):
        seen.append((pop.shape, pop.dtype, np.asarray(jax.random.key_data(key) if hasattr(jax.random, "key_data")
                                                      else key)))
        return jnp.sum(pop**2, axis=1)
    cma_minimize(fit, np.ones(3), 0.1, jax.random.PRNGKey(7), generations=3, popsize=6, jit=False)
    assert [s[:2] for s in seen] == [((6, 3), jnp.float32)] * 3
    assert not np.array_equal(seen[0][2], seen[1][2])  # a fresh key each generation


def test_seeded_and_noisy_fitness_uses_key():
    def noisy(pop, key):
        return jnp.sum(pop**2, axis=1) + 0.01 * jax.random.normal(key, ())
    a = cma_minimize(noisy, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=10, popsize=6, seed=3)
    b = cma_minimize(noisy, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=10, popsize=6, seed=3)
    c = cma_minimize(noisy, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=10, popsize=6, seed=4)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert not np.array_equal(a.mean, c.mean)


def test_nan_fitness_is_ranked_last():
    def fit(pop, key):
        f = jnp.sum((pop - 1) ** 2, axis=1)
        return jnp.where(pop[:, 0] > 3, jnp.nan, f)
    r = cma_minimize(fit, np.zeros(3), 1.0, jax.random.PRNGKey(0), generations=60, popsize=8)
    assert np.isfinite(r.best_fitness) and np.all(np.isfinite(r.mean))
    np.testing.assert_allclose(r.mean, 1.0, atol=0.05)


@pytest.mark.parametrize("kw, match", [
    (dict(x0=np.zeros((2, 2))), "x0"), (dict(sigma0=0.0), "sigma0"), (dict(generations=0), "generations"),
    (dict(popsize=1), "popsize"), (dict(seed=0), "seed")])
def test_bad_arguments(kw, match):
    args = dict(x0=np.zeros(3), sigma0=0.5, generations=2, popsize=4, seed=1)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        cma_minimize(sphere, args.pop("x0"), args.pop("sigma0"), jax.random.PRNGKey(0), **args)


def test_wrong_fitness_shape():
    with pytest.raises(ValueError, match="fitness_fn"):
        cma_minimize(lambda p, k: jnp.zeros(3), np.zeros(3), 0.5, jax.random.PRNGKey(0), generations=1,
                     popsize=4)


def noisy_sphere(pop, key):
    return jnp.sum((pop - 0.7) ** 2, axis=1) + 0.05 * jax.random.normal(key, ())


def test_many_runs_equal_separate_runs():
    """Runs stepped side by side (one vmapped call per generation) give what each run gives alone:
    the same samples (each run's own generator), the same per-generation keys, the same result."""
    x0s = np.stack([np.zeros(4), np.ones(4), -np.ones(4)])
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    many = es.cma_minimize_many(noisy_sphere, x0s, 0.4, keys, generations=25, popsize=6, seeds=[3, 4, 9])
    for r, x0, k, s in zip(many, x0s, keys, [3, 4, 9]):
        one = cma_minimize(noisy_sphere, x0, 0.4, k, generations=25, popsize=6, seed=s)
        np.testing.assert_allclose(r.mean, one.mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(r.history["median"], one.history["median"], rtol=1e-6, atol=1e-9)
        assert r.best_fitness == pytest.approx(one.best_fitness, rel=1e-6, abs=1e-9)
    assert not np.allclose(many[0].mean, many[1].mean)  # independent runs


def test_a_run_does_not_depend_on_numpy_global_state():
    a = cma_minimize(sphere, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=8, popsize=6, seed=3)
    np.random.seed(123)
    np.random.randn(5)
    b = cma_minimize(sphere, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=8, popsize=6, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)


@pytest.mark.parametrize("kw, match", [
    (dict(x0s=np.zeros(3)), "x0s"), (dict(seeds=[1]), "runs"), (dict(keys=jax.random.split(jax.random.PRNGKey(0), 3)), "runs"),
    (dict(seeds=[1, 0]), "seed"), (dict(popsize=1), "popsize"), (dict(generations=0), "generations"),
    (dict(sigma0=-1.0), "sigma0")])
def test_many_bad_arguments(kw, match):
    args = dict(x0s=np.zeros((2, 3)), sigma0=0.5, keys=jax.random.split(jax.random.PRNGKey(0), 2), generations=2,
                popsize=4, seeds=[1, 2])
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        es.cma_minimize_many(sphere, args.pop("x0s"), args.pop("sigma0"), args.pop("keys"), **args)


def test_many_wrong_fitness_shape():
    with pytest.raises(ValueError, match="fitness_fn"):
        es.cma_minimize_many(lambda p, k: jnp.zeros(3), np.zeros((2, 3)), 0.5, jax.random.split(jax.random.PRNGKey(0), 2),
                             generations=1, popsize=4, seeds=[1, 2])


def test_own_generator_gives_pycmas_seeded_numbers():
    """A run's own RandomState(seed) draws what pycma's seed option (NumPy's global generator) gives."""
    import cma

    x = cma.CMAEvolutionStrategy(np.ones(3), 0.3, {"popsize": 6, "seed": 3, "verbose": -9, "verb_log": 0,
                                                   "verb_disp": 0, "tolfun": 0, "tolx": 0, "tolfunhist": 0,
                                                   "tolstagnation": 10**9, "maxiter": 10**9})
    for _ in range(8):
        pop = np.asarray(x.ask())
        x.tell(list(pop), list(np.asarray(sphere(jnp.asarray(pop, jnp.float32), None), np.float64)))
    r = cma_minimize(sphere, np.ones(3), 0.3, jax.random.PRNGKey(1), generations=8, popsize=6, seed=3)
    np.testing.assert_allclose(r.mean, x.mean, rtol=1e-12)
