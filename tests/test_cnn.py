"""Tests for jaxpapers.cnn against lax convolutions and NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import cnn


def rand(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def naive_conv(x, w):
    """SAME, stride 1 cross-correlation with explicit loops."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    B, H, W, _ = x.shape
    k = w.shape[0]
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    out = np.zeros((B, H, W, w.shape[3]))
    for i in range(H):
        for j in range(W):
            out[:, i, j] = np.einsum("bhwc,hwco->bo", xp[:, i:i + k, j:j + k], w)
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d_matches_loops_and_lax(k):
    x, w, b = rand(0, 2, 7, 6, 3), rand(1, k, k, 3, 4), rand(2, 4)
    got = cnn.conv2d(x, w, b)
    np.testing.assert_allclose(got, naive_conv(x, w) + np.asarray(b), atol=1e-4)
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(got, ref + b, atol=1e-4)


def test_conv2d_vmaps_over_per_episode_kernels():
    x, w = rand(0, 5, 2, 6, 6, 2), rand(1, 5, 3, 3, 2, 3)
    got = jax.vmap(cnn.conv2d)(x, w)
    for e in range(5):
        np.testing.assert_allclose(got[e], naive_conv(x[e], w[e]), atol=1e-4)


def test_conv2d_gradient_matches_lax():
    x, w = rand(0, 2, 5, 5, 2), rand(1, 3, 3, 2, 3)
    ours = jax.grad(lambda w: jnp.sum(jnp.sin(cnn.conv2d(x, w))))(w)
    ref = jax.grad(lambda w: jnp.sum(jnp.sin(jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))))(w)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_max_pool_matches_loops():
    x = rand(0, 2, 5, 6, 3)
    got = np.asarray(cnn.max_pool(x))
    assert got.shape == (2, 2, 3, 3)
    xn = np.asarray(x)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[:, i, j], xn[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2)))


def test_batch_norm_statistics_and_mask():
    x, g, b = rand(0, 6, 3, 3, 4), rand(1, 4), rand(2, 4)
    y = np.asarray(cnn.batch_norm(x, jnp.ones(4), jnp.zeros(4)))
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var((0, 1, 2)), 1, atol=1e-3)
    mask = jnp.array([True, True, False, True, False, True])
    got = np.asarray(cnn.batch_norm(x, g, b, mask))
    xs = np.asarray(x)[np.asarray(mask)]
    mean, var = xs.mean((0, 1, 2)), xs.var((0, 1, 2))
    ref = (np.asarray(x) - mean) / np.sqrt(var + 1e-5) * np.asarray(g) + np.asarray(b)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # masked-out samples do not change the statistics of the others
    x2 = x.at[2].set(100.0)
    np.testing.assert_allclose(cnn.batch_norm(x2, g, b, mask)[np.asarray(mask)], got[np.asarray(mask)], atol=1e-4)


def test_features_shapes_heads_and_partial():
    params = cnn.init_cnn(jax.random.PRNGKey(0), 1, 4, 3)
    x = rand(0, 5, 20, 20)
    flat = cnn.features(params, x, "flatten")
    gap = cnn.features(params, x, "gap")
    assert flat.shape == (5, cnn.feature_size(20, 4, 3, "flatten")) == (5, 16)
    assert gap.shape == (5, cnn.feature_size(20, 4, 3, "gap")) == (5, 4)
    fmap = cnn.features(params, x, n_layers=3)
    np.testing.assert_allclose(gap, np.asarray(fmap).mean((1, 2)), atol=1e-6)
    np.testing.assert_allclose(flat, np.asarray(fmap).reshape(5, -1), atol=1e-6)
    assert cnn.features(params, x, n_layers=1).shape == (5, 10, 10, 4)


def test_features_equal_a_naive_forward_pass():
    params = cnn.init_cnn(jax.random.PRNGKey(1), 1, 3, 2)
    x = np.asarray(rand(3, 4, 8, 8))[..., None]
    h = x.astype(np.float64)
    for w, g, b in zip(params["w"], params["gamma"], params["beta"]):
        h = naive_conv(h, w)
        h = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5) * np.asarray(g) + np.asarray(b)
        h = np.maximum(h, 0)
        B, H, W, C = h.shape
        h = h.reshape(B, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))
    np.testing.assert_allclose(cnn.features(params, x[..., 0], "flatten"), h.reshape(4, -1), atol=1e-4)


def test_logits_layer():
    phi, w, b = rand(0, 3, 5), rand(1, 5, 2), rand(2, 2)
    np.testing.assert_allclose(cnn.logits(phi, w, b), np.asarray(phi) @ np.asarray(w) + np.asarray(b), atol=1e-5)


def test_init_shapes():
    p = cnn.init_cnn(jax.random.PRNGKey(0), 2, 6, 4, 5)
    assert [w.shape for w in p["w"]] == [(5, 5, 2, 6)] + [(5, 5, 6, 6)] * 3
    assert all(g.shape == (6,) for g in p["gamma"]) and len(p["beta"]) == 4
    assert p["w"][0].dtype == jnp.float32


@pytest.mark.parametrize("call", [
    lambda: cnn.im2col(jnp.zeros((2, 4, 4, 1)), 2),
    lambda: cnn.im2col(jnp.zeros((4, 4)), 3),
    lambda: cnn.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 3, 1))),
    lambda: cnn.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 2, 2, 1))),
    lambda: cnn.max_pool(jnp.zeros((1, 1, 1, 1)), 2),
    lambda: cnn.batch_norm(jnp.zeros((2, 3)), jnp.ones(2), jnp.zeros(3)),
    lambda: cnn.batch_norm(jnp.zeros((2, 3)), jnp.ones(3), jnp.zeros(3), mask=jnp.ones(3)),
    lambda: cnn.head(jnp.zeros((1, 2, 2, 3)), "mean"),
    lambda: cnn.feature_size(8, 4, 4, "gap"),
    lambda: cnn.init_cnn(jax.random.PRNGKey(0), 1, 0),
    lambda: cnn.features(cnn.init_cnn(jax.random.PRNGKey(0), 1, 2, 1), jnp.zeros((2, 4, 4)), n_layers=3),
    lambda: cnn.logits(jnp.zeros((2, 3)), jnp.zeros((4, 2))),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
