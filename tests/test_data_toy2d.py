import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers.data import toy2d


def _naive_label(name, x):
    out = []
    for x0, x1 in np.asarray(x):
        a, b = x0 > 0, x1 > 0
        out.append({"xor": a != b, "nxor": a == b, "or": a or b, "and": a and b, "nand": not (a and b),
                    "qand": (not a) and b, "circle": x0 * x0 + x1 * x1 < 2 / np.pi}[name])
    return np.array(out, dtype=np.int32)


@pytest.mark.parametrize("name", [t for t in toy2d.TASKS if t != "moons"])
def test_labels_match_naive(name):
    x, y = toy2d.sample(name, jax.random.PRNGKey(0), 500)
    assert x.shape == (500, 2) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    np.testing.assert_array_equal(y, _naive_label(name, x))


@pytest.mark.parametrize("name, rate", [("xor", 0.5), ("nxor", 0.5), ("or", 0.75), ("and", 0.25),
                                        ("nand", 0.75), ("qand", 0.25), ("circle", 0.5), ("moons", 0.5)])
def test_base_rates(name, rate):
    _, y = toy2d.sample(name, jax.random.PRNGKey(1), 20_000)
    assert abs(float(y.mean()) - rate) < 0.015


def test_moons_geometry_and_linear_separability_table():
    x, y = toy2d.sample("moons", jax.random.PRNGKey(2), 4000)
    assert float(jnp.abs(x).max()) < 1.8
    # least-squares linear classifier: ~0.85-0.9 on moons, ~1 on linearly separable tasks
    for name in ("moons", "nand", "xor"):
        x, y = toy2d.sample(name, jax.random.PRNGKey(3), 4000)
        X = np.c_[np.asarray(x), np.ones(len(x))]
        w = np.linalg.lstsq(X, 2 * np.asarray(y) - 1.0, rcond=None)[0]
        acc = float(toy2d.balanced_accuracy(jnp.asarray((X @ w > 0).astype(np.int32)), y))
        if toy2d.LINEARLY_SEPARABLE[name]:
            assert acc > 0.85, name  # a quadrant: the best line reaches ~0.90 balanced accuracy
        elif name == "xor":
            assert acc < 0.6
        else:
            assert 0.8 < acc < 0.95


def test_sample_task_traced_index_matches_sample():
    names = ("xor", "and", "moons")
    f = jax.jit(lambda i, k: toy2d.sample_task(names, i, k, 64))
    for i, name in enumerate(names):
        x, y = f(i, jax.random.PRNGKey(5))
        xr, yr = toy2d.sample(name, jax.random.PRNGKey(5), 64)
        np.testing.assert_allclose(x, xr, atol=1e-6)  # jit may fuse the arithmetic differently
        if name == "moons":
            np.testing.assert_array_equal(y, yr)
        else:
            np.testing.assert_array_equal(y, toy2d.label(name, x))


def test_balanced_accuracy_against_naive():
    rng = np.random.default_rng(0)
    for c in (2, 5):
        y = rng.integers(0, c, 200)
        p = np.where(rng.random(200) < 0.7, y, rng.integers(0, c, 200))
        ref = np.mean([np.mean(p[y == k] == k) for k in range(c) if np.any(y == k)])
        np.testing.assert_allclose(toy2d.balanced_accuracy(jnp.asarray(p), jnp.asarray(y), c), ref, rtol=1e-6)
    y = jnp.array([0, 0, 0, 1])
    assert float(toy2d.balanced_accuracy(jnp.zeros(4, jnp.int32), y)) == 0.5  # constant predictor
    # a class absent from y is skipped; batched inputs work
    np.testing.assert_allclose(toy2d.balanced_accuracy(jnp.array([[1, 1], [0, 1]]), jnp.array([[1, 1], [1, 1]])),
                               [1.0, 0.5])


def test_bad_input():
    with pytest.raises(ValueError, match="unknown task"):
        toy2d.sample("parity", jax.random.PRNGKey(0), 10)
    with pytest.raises(ValueError, match="n must"):
        toy2d.sample("xor", jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="x must"):
        toy2d.label("xor", jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        toy2d.balanced_accuracy(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="num_classes"):
        toy2d.balanced_accuracy(jnp.zeros(3), jnp.zeros(3), 1)
    with pytest.raises(ValueError, match="names"):
        toy2d.sample_task((), 0, jax.random.PRNGKey(0), 3)
