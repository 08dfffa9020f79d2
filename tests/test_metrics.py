"""Tests for jaxpapers.metrics (sensitivity comparison of in-context predictors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import metrics

D_X = 3
rng = np.random.default_rng(0)
TOKENS = jnp.asarray(rng.normal(size=(6, 5, D_X + 2)), jnp.float32)
A = jnp.asarray(rng.normal(size=(2, D_X)), jnp.float32)


def linear(t):  # prediction A x_q: sensitivity is A for every task
    return A @ t[-1, :D_X]


def nonlinear(t):  # depends on the context too
    return jnp.tanh(t[:-1, :D_X].sum(0) * t[-1, :D_X]).sum(keepdims=True) + t[-1, 0] ** 2


def finite_difference(fn, tokens, h=1e-3):
    t = np.asarray(tokens, np.float64)
    out = []
    for b in range(t.shape[0]):
        cols = []
        for k in range(D_X):
            tp, tm = t[b].copy(), t[b].copy()
            tp[-1, k] += h
            tm[-1, k] -= h
            cols.append((np.asarray(fn(jnp.asarray(tp, jnp.float32)), np.float64)
                         - np.asarray(fn(jnp.asarray(tm, jnp.float32)), np.float64)) / (2 * h))
        out.append(np.stack(cols, axis=-1))
    return np.stack(out)


def test_sensitivity_of_linear_predictor_is_its_matrix():
    s = metrics.sensitivity(linear, TOKENS, D_X)
    assert s.shape == (6, 2, D_X) and s.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(s), np.broadcast_to(np.asarray(A), (6, 2, D_X)), rtol=1e-6)


def test_sensitivity_matches_finite_differences():
    s = metrics.sensitivity(nonlinear, TOKENS, D_X)
    assert s.shape == (6, 1, D_X)
    np.testing.assert_allclose(np.asarray(s), finite_difference(nonlinear, TOKENS), rtol=2e-3, atol=2e-3)


def test_cosine_and_l2_match_numpy():
    a = rng.normal(size=(5, 2, 3)).astype(np.float32)
    b = rng.normal(size=(5, 2, 3)).astype(np.float32)
    fa, fb = a.reshape(5, -1), b.reshape(5, -1)
    cos = np.array([fa[i] @ fb[i] / np.linalg.norm(fa[i]) / np.linalg.norm(fb[i]) for i in range(5)])
    l2 = np.array([np.linalg.norm(fa[i] - fb[i]) for i in range(5)])
    np.testing.assert_allclose(np.asarray(metrics.cosine(jnp.asarray(a), jnp.asarray(b))), cos, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(metrics.l2_diff(jnp.asarray(a), jnp.asarray(b))), l2, rtol=1e-5)


def test_identical_predictors_have_cosine_one_and_zero_distance():
    assert abs(float(metrics.sensitivity_cosine(nonlinear, nonlinear, TOKENS, D_X)) - 1) < 1e-5
    assert float(metrics.sensitivity_l2(nonlinear, nonlinear, TOKENS, D_X)) == 0.0


def test_scaled_and_negated_predictors():
    twice = lambda t: 2 * linear(t)
    neg = lambda t: -linear(t)
    assert abs(float(metrics.sensitivity_cosine(linear, twice, TOKENS, D_X)) - 1) < 1e-5
    assert abs(float(metrics.sensitivity_cosine(linear, neg, TOKENS, D_X)) + 1) < 1e-5
    np.testing.assert_allclose(float(metrics.sensitivity_l2(linear, twice, TOKENS, D_X)),
                               np.linalg.norm(np.asarray(A)), rtol=1e-5)


def test_compare_returns_all_metrics():
    out = metrics.compare(linear, lambda t: linear(t) + 1.0, TOKENS, D_X)
    assert set(out) == {"cos", "l2", "pred_diff"}
    assert abs(float(out["cos"]) - 1) < 1e-5 and float(out["l2"]) == 0.0
    np.testing.assert_allclose(float(out["pred_diff"]), np.sqrt(2), rtol=1e-5)


def test_metrics_are_jittable():
    f = jax.jit(lambda t: metrics.sensitivity_cosine(linear, lambda u: linear(u) ** 2, t, D_X))
    assert np.isfinite(float(f(TOKENS)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="tokens"):
        metrics.sensitivity(linear, TOKENS[0], D_X)
    with pytest.raises(ValueError, match="d_x"):
        metrics.sensitivity(linear, TOKENS, 0)
    with pytest.raises(ValueError, match="d_x"):
        metrics.sensitivity(linear, TOKENS, D_X + 10)
    with pytest.raises(ValueError, match="same shape"):
        metrics.cosine(jnp.zeros((2, 3)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        metrics.l2_diff(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
