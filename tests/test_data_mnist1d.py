"""Tests for the procedural MNIST-1D generator."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from jaxpapers.data import mnist1d


def test_templates_shape_and_normalisation():
    t = mnist1d.templates()
    assert t.shape == (10, 12)
    np.testing.assert_allclose(t[:, 0], 0.0)
    # whitened before the shift and the 1/6 scale: every row has std 1/6
    np.testing.assert_allclose(t.std(1), 1 / 6, rtol=1e-12)


def test_resample_matches_scipy_interp1d():
    x = np.random.default_rng(0).normal(size=(3, 17))
    ref = interp1d(np.linspace(0, 1, 17), x, axis=1, kind="linear")(np.linspace(0, 1, 40))
    np.testing.assert_allclose(mnist1d._resample(x, 40), ref, atol=1e-12)


def test_make_dataset_shapes_balance_and_standardisation():
    x, y = mnist1d.make_dataset(1000, seed=1)
    assert x.shape == (1000, 40) and x.dtype == np.float32
    assert y.shape == (1000,) and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 100))
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4


def test_deterministic_and_seed_dependent():
    a, ya = mnist1d.make_dataset(200, seed=3)
    b, yb = mnist1d.make_dataset(200, seed=3)
    c, _ = mnist1d.make_dataset(200, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a, c)


def test_classes_are_separable_by_template_correlation():
    """Signals keep their class information: nearest class mean beats chance by far."""
    x, y = mnist1d.make_dataset(2000, seed=0)
    means = np.stack([x[y == k].mean(0) for k in range(10)])
    pred = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.2  # chance is 0.1


def test_transform_noise_free_parts():
    rng = np.random.default_rng(0)
    out = mnist1d.transform(mnist1d.templates()[:2], rng)
    assert out.shape == (2, 40) and np.all(np.isfinite(out))


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_samples"):
        mnist1d.make_dataset(5)
    with pytest.raises(ValueError, match="x must"):
        mnist1d.transform(np.zeros((2, 11)), np.random.default_rng(0))
