"""Tests for jaxpapers.growth_conv (exact conv GradMax) against explicit loops, finite differences and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import growth, growth_conv as gc


def _np_conv(x, w, stride=1):
    """Explicit-loop cross-correlation with zero padding k // 2 (float64)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    b, h, wd, _ = x.shape
    k, p = w.shape[0], w.shape[0] // 2
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = np.zeros((b, ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            for dy in range(k):
                for dx in range(k):
                    yy, xx = i * stride + dy - p, j * stride + dx - p
                    if 0 <= yy < h and 0 <= xx < wd:
                        out[:, i, j] += x[:, yy, xx] @ w[dy, dx]
    return out


def _np_matrix(x, delta, k_in, k_out, stride=1, restrict=True):
    """Eq. (C1) by explicit loops; ``restrict=False`` sums hidden positions beyond the map (combined kernel)."""
    x, delta = np.asarray(x, np.float64), np.asarray(delta, np.float64)
    b, h, w, c_in = x.shape
    _, ho, wo, c_out = delta.shape
    p1, p2 = k_in // 2, k_out // 2
    m = np.zeros((k_in, k_in, c_in, k_out, k_out, c_out))
    rng_y = range(ho) if restrict else range(-p2, ho + p2)
    rng_x = range(wo) if restrict else range(-p2, wo + p2)
    for py in rng_y:
        for px in rng_x:
            for uy in range(k_in):
                for ux in range(k_in):
                    yy, xx = py * stride + uy - p1, px * stride + ux - p1
                    if not (0 <= yy < h and 0 <= xx < w):
                        continue
                    for vy in range(k_out):
                        for vx in range(k_out):
                            qy, qx = py + p2 - vy, px + p2 - vx
                            if 0 <= qy < ho and 0 <= qx < wo:
                                m[uy, ux, :, vy, vx, :] += x[:, yy, xx].T @ delta[:, qy, qx]
    return m.reshape(k_in * k_in * c_in, k_out * k_out * c_out)


def _data(seed=0, b=2, h=5, c_in=2, c_out=3, stride=1, k_in=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, h, h, c_in)).astype(np.float32)
    ho = (h - 1) // stride + 1
    delta = rng.normal(size=(b, ho, ho, c_out)).astype(np.float32)
    return x, delta


# --------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_and_patches_match_loops(stride):
    x, _ = _data(h=6)
    w = np.random.default_rng(1).normal(size=(3, 3, 2, 4)).astype(np.float32)
    y = gc.conv2d(jnp.asarray(x), jnp.asarray(w), stride)
    assert y.shape == (2, 6 // stride, 6 // stride, 4) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), _np_conv(x, w, stride), rtol=1e-5, atol=1e-5)
    pat = gc.conv_patches(x, 3, stride)
    np.testing.assert_allclose(np.asarray(pat @ w.reshape(-1, 4)), _np_conv(x, w, stride), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the growth matrix
@pytest.mark.parametrize("k_in, k_out, stride, h", [(3, 3, 1, 5), (3, 1, 1, 4), (1, 3, 1, 4), (5, 3, 1, 4),
                                                    (3, 3, 2, 6), (3, 3, 2, 5)])
def test_conv_gradient_matrix_matches_explicit_loop(k_in, k_out, stride, h):
    x, delta = _data(h=h, stride=stride)
    m = gc.conv_gradient_matrix(x, delta, k_in, k_out, stride)
    assert m.shape == (k_in * k_in * 2, k_out * k_out * 3) and m.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(m), _np_matrix(x, delta, k_in, k_out, stride), rtol=1e-5, atol=1e-5)


def _pair_loss(params, x, y, stride=1, act=growth.relu1):
    return jnp.mean((gc.conv_pair_apply(params, x, act, stride) - y) ** 2)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_gradient_matrix_equals_autodiff_through_a_grown_network(stride):
    """Exact linearisation: the Jacobian of B -> dL/dA (A = 0) of a really grown network equals M (borders included)."""
    key = jax.random.PRNGKey(0)
    p = gc.init_padded_conv_pair(key, 2, 3, 5, 3)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, 2))
    y = jax.random.normal(jax.random.PRNGKey(2), (2, 6 // stride, 6 // stride, 3))
    hidden = growth.relu1(gc.conv2d(x, p["w_in"], stride))
    z = gc.conv2d(hidden, p["w_out"])
    delta = jax.grad(lambda z_: jnp.mean((z_ - y) ** 2))(z)
    m = gc.conv_gradient_matrix(x, delta, 3, 3, stride)

    def grad_in(b_flat):
        q, _ = gc.grow_conv(p, 3, b_flat.reshape(1, 3, 3, 3))
        return jax.grad(_pair_loss)(q, x, y, stride)["w_in"][..., 3]

    ref = growth.exact_growth_matrix(grad_in, 27)
    np.testing.assert_allclose(np.asarray(m), np.asarray(ref), rtol=1e-4, atol=1e-6)


def test_conv_gradient_matrix_matches_finite_differences():
    """float64 central differences of the loss w.r.t. a new *linear* unit's incoming kernel at A = 0.

    At A = 0, relu1 (slope 1 at 0) has the same derivative as the identity, and with a linear
    unit the loss is quadratic in A, so central differences are exact up to round-off.
    """
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 4, 2))
    w_in, w_out = rng.normal(size=(3, 3, 2, 2)), rng.normal(size=(3, 3, 2, 3))
    y = rng.normal(size=(2, 4, 4, 3))
    bker = rng.normal(size=(3, 3, 3))
    z0 = _np_conv(np.maximum(_np_conv(x, w_in), 0), w_out)

    def loss(a_flat):
        hn = _np_conv(x, a_flat.reshape(3, 3, 2, 1))
        return np.mean((z0 + _np_conv(hn, bker[:, :, None, :]) - y) ** 2)

    eps, fd = 1e-4, np.zeros(18)
    for i in range(18):
        e = np.zeros(18)
        e[i] = eps
        fd[i] = (loss(e) - loss(-e)) / (2 * eps)
    delta = 2 * (z0 - y) / y.size
    m = np.asarray(gc.conv_gradient_matrix(x.astype(np.float32), delta.astype(np.float32), 3, 3))
    np.testing.assert_allclose(m @ bker.reshape(-1), fd, rtol=1e-4, atol=1e-7)


def test_combined_kernel_matrix_is_the_unrestricted_sum_and_wrong_at_borders():
    x, delta = _data(h=5)
    mc = np.asarray(gc.combined_kernel_gradient_matrix(x, delta, 3, 3))
    np.testing.assert_allclose(mc, _np_matrix(x, delta, 3, 3, restrict=False), rtol=1e-5, atol=1e-5)
    exact = np.asarray(gc.conv_gradient_matrix(x, delta, 3, 3))
    assert np.linalg.norm(mc - exact) / np.linalg.norm(exact) > 0.05  # borders matter on a 5x5 map
    # with x zero on a border ring of width p_in + p_out = 2, the extra terms vanish and both agree
    xr = np.zeros((2, 9, 9, 2), np.float32)
    xr[:, 2:-2, 2:-2] = x
    dr = np.random.default_rng(5).normal(size=(2, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(gc.combined_kernel_gradient_matrix(xr, dr, 3, 3)),
                               np.asarray(gc.conv_gradient_matrix(xr, dr, 3, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, match", [
    (dict(k_in=2), "k_in"), (dict(k_out=0), "k_out"), (dict(k_in=3.0), "k_in"), (dict(stride=0), "stride"),
    (dict(x=np.zeros((2, 5, 5))), "B, H, W, C"), (dict(delta=np.zeros((3, 5, 5, 3))), "same batch"),
    (dict(delta=np.zeros((2, 4, 4, 3))), "hidden map"), (dict(stride=2), "hidden map"),
])
def test_conv_gradient_matrix_bad_input(args, match):
    x, delta = _data(h=5)
    kw = dict(x=x, delta=delta, k_in=3, k_out=3, stride=1)
    kw.update(args)
    with pytest.raises(ValueError, match=match):
        gc.conv_gradient_matrix(**kw)


def test_helpers_bad_input():
    with pytest.raises(ValueError, match="w must"):
        gc.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="kernel size"):
        gc.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="x must"):
        gc.conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="k must"):
        gc.conv_patches(jnp.zeros((1, 4, 4, 2)), 4)
    with pytest.raises(ValueError, match="max_width"):
        gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 6, 5, 3)
    with pytest.raises(ValueError, match="k must"):
        gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 3, 5, 3, k=2)
    with pytest.raises(ValueError, match="combined|stride|hidden"):
        gc.combined_kernel_gradient_matrix(np.zeros((1, 6, 6, 2)), np.zeros((1, 3, 3, 3)), 3, 3)


# --------------------------------------------------------------------------- growth
def test_init_padded_conv_pair_shapes_and_zero_slots():
    p = gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 3, 5, 4)
    assert p["w_in"].shape == (3, 3, 2, 5) and p["w_out"].shape == (3, 3, 5, 4)
    assert p["w_in"].dtype == jnp.float32
    assert np.all(np.asarray(p["w_in"])[..., 3:] == 0) and np.all(np.asarray(p["w_out"])[:, :, 3:] == 0)
    assert np.all(np.asarray(p["w_in"])[..., :3] != 0)


def test_mean_active_kernel_norm_matches_numpy():
    w = np.random.default_rng(0).normal(size=(3, 3, 5, 4)).astype(np.float32)
    ref = np.mean([np.linalg.norm(w[:, :, j, :]) for j in range(3)])
    assert float(gc.mean_active_kernel_norm(w, 3)) == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="w_out"):
        gc.mean_active_kernel_norm(np.zeros((3, 3, 5)), 2)


def test_grow_conv_writes_slots_like_numpy_and_compiles_once():
    p = gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 3, 6, 4)
    out = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    inc = np.ones((2, 3, 3, 2), np.float32)
    q, a = gc.grow_conv(p, 3, out, inc)
    ref_out, ref_in = np.asarray(p["w_out"]).copy(), np.asarray(p["w_in"]).copy()
    ref_out[:, :, 3] = out[0]
    ref_out[:, :, 4] = out[1]
    ref_in[..., 3:5] = 1.0
    np.testing.assert_array_equal(np.asarray(q["w_out"]), ref_out)
    np.testing.assert_array_equal(np.asarray(q["w_in"]), ref_in)
    assert int(a) == 5
    calls = []

    @jax.jit
    def g(p, a):
        calls.append(1)
        return gc.grow_conv(p, a, jnp.ones((1, 3, 3, 4)))

    for a in (3, 4):
        p, _ = g(p, jnp.int32(a))
    assert len(calls) == 1 and np.all(np.asarray(p["w_out"])[:, :, 3:5] == 1)


def test_grow_conv_bad_input():
    p = gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 3, 5, 4)
    with pytest.raises(ValueError, match="out_kernels"):
        gc.grow_conv(p, 3, np.ones((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="in_kernels"):
        gc.grow_conv(p, 3, np.ones((1, 3, 3, 4)), np.ones((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="cannot grow"):
        gc.grow_conv(p, 0, np.ones((6, 3, 3, 4)))
    with pytest.raises(ValueError, match="k must"):
        gc.conv_slot_grad_norm(np.ones((3, 3, 2, 5)), 0, 6)
    with pytest.raises(ValueError, match="grad_w_in"):
        gc.conv_slot_grad_norm(np.ones((3, 2, 5)), 0, 1)
    m = np.ones((18, 36), np.float32)
    with pytest.raises(ValueError, match="m must"):
        gc.conv_growth_directions(m[:, :30], p["w_out"], 3, 1)
    with pytest.raises(ValueError, match="kind"):
        gc.conv_growth_directions(m, p["w_out"], 3, 1, kind="normal")
    with pytest.raises(ValueError, match="key"):
        gc.conv_growth_directions(m, p["w_out"], 3, 1, kind="uniform")
    with pytest.raises(ValueError, match="k must"):
        gc.conv_growth_directions(m, p["w_out"], 3, 0)


@pytest.mark.parametrize("k", [1, 2])
def test_gradmax_conv_growth_preserves_function_and_reaches_c_sigma(k):
    p = gc.init_padded_conv_pair(jax.random.PRNGKey(0), 2, 3, 5, 4)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 6, 2))
    y = jax.random.normal(jax.random.PRNGKey(2), (4, 6, 6, 4))
    z = gc.conv_pair_apply(p, x)
    delta = jax.grad(lambda z_: jnp.mean((z_ - y) ** 2))(z)
    m = gc.conv_gradient_matrix(x, delta, 3, 3)
    out = gc.conv_growth_directions(m, p["w_out"], 3, k, scale=0.5)
    c = 0.5 * float(gc.mean_active_kernel_norm(p["w_out"], 3))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out).reshape(k, -1), axis=1), c, rtol=1e-5)
    q, a = gc.grow_conv(p, 3, out)
    assert int(a) == 3 + k
    assert abs(float(_pair_loss(q, x, y)) - float(_pair_loss(p, x, y))) <= 1e-6  # function preserved
    g = jax.grad(_pair_loss)(q, x, y)["w_in"]
    sig = np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)
    got = float(gc.conv_slot_grad_norm(g, 3, k))
    assert got == pytest.approx(c * np.sqrt(np.sum(sig[:k] ** 2)), rel=1e-4)
    # random directions of the same norm get less
    r = gc.conv_growth_directions(m, p["w_out"], 3, k, 0.5, "gaussian", jax.random.PRNGKey(9))
    qr, _ = gc.grow_conv(p, 3, r)
    assert float(gc.conv_slot_grad_norm(jax.grad(_pair_loss)(qr, x, y)["w_in"], 3, k)) < got
