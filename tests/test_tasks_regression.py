"""Tests for jaxpapers.tasks.regression (in-context regression task samplers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers.tasks import OOD_FAMILIES, sample_linear, sample_ood, sample_sine, to_alternating

KEY = jax.random.PRNGKey(0)


def test_linear_shapes_and_dtypes():
    tokens, targets, w = sample_linear(KEY, 7, n_context=5, d_x=3, d_y=2)
    assert tokens.shape == (7, 6, 5) and targets.shape == (7, 2) and w.shape == (7, 2, 3)
    assert tokens.dtype == targets.dtype == w.dtype == jnp.float32


def test_linear_targets_follow_weights_and_query_is_hidden():
    tokens, targets, w = map(np.asarray, sample_linear(KEY, 50, n_context=4, d_x=3, d_y=2))
    x, y = tokens[:, :, :3], tokens[:, :, 3:]
    for b in range(50):  # naive per-task loop
        for i in range(4):
            np.testing.assert_allclose(y[b, i], w[b] @ x[b, i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(targets[b], w[b] @ x[b, 4], rtol=1e-5, atol=1e-6)
        assert np.all(y[b, 4] == 0)


def test_input_range_and_target_scale_statistics():
    tokens, _, w = sample_linear(KEY, 4000, input_range=3.0, target_scale=2.0)
    x = np.asarray(tokens[:, :, :10])
    assert x.min() >= -1.5 and x.max() <= 1.5 and x.max() > 1.45
    np.testing.assert_allclose(x.var(), 9 / 12, rtol=0.02)   # U(-a, a): a^2 / 3
    np.testing.assert_allclose(np.asarray(w).std(), 2.0, rtol=0.02)


def test_noise_only_on_context():
    t0, y0, w0 = sample_linear(KEY, 20, noise=0.0)
    t1, y1, w1 = sample_linear(KEY, 20, noise=0.5)
    np.testing.assert_array_equal(np.asarray(y0), np.asarray(y1))  # query target stays clean
    diff = np.asarray(t1 - t0)[:, :10, 10]
    assert np.abs(diff).mean() > 0.1
    np.testing.assert_array_equal(np.asarray(t1 - t0)[:, :, :10], 0)


def test_same_key_same_tasks_different_key_different_tasks():
    a = sample_linear(KEY, 3)[0]
    b = sample_linear(KEY, 3)[0]
    c = sample_linear(jax.random.PRNGKey(1), 3)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("family", OOD_FAMILIES)
def test_ood_alpha_one_is_in_distribution_and_alpha_scales(family):
    base = sample_linear(KEY, 10)
    same = sample_ood(KEY, 10, family, 1.0)
    for a, b in zip(base, same):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    t2, y2, w2 = sample_ood(KEY, 10, family, 2.0)
    if family == "input_range":
        np.testing.assert_allclose(np.asarray(t2[:, :, :10]), 2 * np.asarray(base[0][:, :, :10]), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(w2), np.asarray(base[2]))
    else:
        np.testing.assert_allclose(np.asarray(w2), 2 * np.asarray(base[2]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(y2), 2 * np.asarray(base[1]), rtol=1e-4, atol=1e-6)


def test_sine_tasks():
    tokens, targets, ap = map(np.asarray, sample_sine(KEY, 30, n_context=6))
    assert tokens.shape == (30, 7, 2) and targets.shape == (30, 1) and ap.shape == (30, 2)
    a, p = ap[:, 0], ap[:, 1]
    assert np.all((a >= 0.1) & (a <= 0.5)) and np.all((p >= 0) & (p <= np.pi))
    np.testing.assert_allclose(tokens[:, :6, 1], a[:, None] * np.sin(tokens[:, :6, 0] + p[:, None]), atol=1e-5)
    np.testing.assert_allclose(targets[:, 0], a * np.sin(tokens[:, 6, 0] + p), atol=1e-5)
    assert np.all(tokens[:, 6, 1] == 0)


def test_to_alternating_matches_loop():
    tokens, _, _ = sample_linear(KEY, 4, n_context=3, d_x=2, d_y=2)
    alt = np.asarray(to_alternating(tokens, 2))
    t = np.asarray(tokens)
    assert alt.shape == (4, 7, 4)
    for b in range(4):
        for i in range(3):
            np.testing.assert_array_equal(alt[b, 2 * i], np.concatenate([t[b, i, :2], [0, 0]]))
            np.testing.assert_array_equal(alt[b, 2 * i + 1], np.concatenate([[0, 0], t[b, i, 2:]]))
        np.testing.assert_array_equal(alt[b, 6], t[b, 3])


@pytest.mark.parametrize("kwargs, name", [
    ({"batch": 0}, "batch"), ({"batch": 2.0}, "batch"), ({"n_context": 0}, "n_context"),
    ({"d_x": -1}, "d_x"), ({"d_y": True}, "d_y"), ({"input_range": 0.0}, "input_range"),
    ({"target_scale": float("nan")}, "target_scale"), ({"noise": -0.1}, "noise"),
])
def test_linear_bad_arguments(kwargs, name):
    args = dict(batch=2) | kwargs
    with pytest.raises(ValueError, match=name):
        sample_linear(KEY, **args)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="family"):
        sample_ood(KEY, 2, "noise", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        sample_ood(KEY, 2, "input_range", 0.0)
    with pytest.raises(ValueError, match="amplitude"):
        sample_sine(KEY, 2, amplitude=(0.5, 0.1))
    with pytest.raises(ValueError, match="d_x"):
        to_alternating(jnp.zeros((2, 3, 4)), 4)
