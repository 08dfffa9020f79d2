"""Tests for jaxpapers.growth (GradMax, Evci et al. 2022) against naive NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import growth


def _np_mlp(p, x, d0=1.0):
    z = x @ p["w1"] + p.get("b1", 0.0)
    return np.maximum(z, 0.0) @ p["w2"] + p.get("b2", 0.0)


def _params(seed=0, d_in=4, width=3, max_width=6, d_out=5, bias=True):
    return growth.init_padded_mlp(jax.random.PRNGKey(seed), d_in, width, max_width, d_out, bias=bias)


# --------------------------------------------------------------------------- activations
@pytest.mark.parametrize("d0", [0.0, 0.5, 1.0])
def test_relu_d0_derivative_at_zero(d0):
    g = jax.grad(lambda x: growth.relu_d0(x, d0))
    assert float(g(0.0)) == d0
    assert float(g(2.0)) == 1.0 and float(g(-2.0)) == 0.0


def test_relu1_derivative_at_zero_is_one_unlike_jax_relu():
    assert float(jax.grad(growth.relu1)(0.0)) == 1.0
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0  # the pitfall relu1 avoids


def test_relu_d0_values_match_numpy():
    x = np.linspace(-2, 2, 41).astype(np.float32)
    for d0 in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(np.asarray(growth.relu_d0(jnp.asarray(x), d0)), np.maximum(x, 0))
        np.testing.assert_array_equal(np.asarray(jax.vmap(jax.grad(growth.relu_d0))(jnp.asarray(x), jnp.full(41, d0))),
                                      np.where(x > 0, 1.0, np.where(x == 0, d0, 0.0)))


# --------------------------------------------------------------------------- padded MLP
def test_init_padded_shapes_dtypes_and_zero_slots():
    p = _params()
    assert p["w1"].shape == (4, 6) and p["w2"].shape == (6, 5) and p["b1"].shape == (6,) and p["b2"].shape == (5,)
    assert all(v.dtype == jnp.float32 for v in p.values())
    assert np.all(np.asarray(p["w1"])[:, 3:] == 0) and np.all(np.asarray(p["w2"])[3:] == 0)
    assert np.all(np.asarray(p["w1"])[:, :3] != 0)
    lim = np.sqrt(6 / (4 + 3))
    assert np.abs(np.asarray(p["w1"])).max() <= lim
    pu = growth.init_padded_mlp(jax.random.PRNGKey(0), 4, 3, 6, 5, init="uniform", bias=False)
    assert set(pu) == {"w1", "w2"} and np.abs(np.asarray(pu["w1"])).max() <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_in=0), "d_in"), (dict(width=7), "max_width"), (dict(init="he"), "init"), (dict(d_out=2.5), "d_out"),
])
def test_init_padded_bad_input(kwargs, match):
    args = dict(d_in=4, width=3, max_width=6, d_out=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        growth.init_padded_mlp(jax.random.PRNGKey(0), **args)


def test_mlp_apply_matches_numpy_and_padding_is_invisible():
    p = _params(bias=True)
    p = {k: v + 0.1 * (k.startswith("b")) for k, v in p.items()}
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    pn = {k: np.asarray(v) for k, v in p.items()}
    np.testing.assert_allclose(np.asarray(growth.mlp_apply(p, x)), _np_mlp(pn, x), rtol=1e-5, atol=1e-6)


def test_zero_slot_is_fixed_point_of_gradient():
    p = _params(bias=False)
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    y = jax.random.normal(jax.random.PRNGKey(2), (16, 5))
    g = jax.grad(lambda q: jnp.mean((growth.mlp_apply(q, x) - y) ** 2))(p)
    assert np.all(np.asarray(g["w1"])[:, 3:] == 0) and np.all(np.asarray(g["w2"])[3:] == 0)


# --------------------------------------------------------------------------- gradient matrix
def _setup(seed=0, n=32, d_in=4, d_out=5, bias=True):
    p = _params(seed, d_in=d_in, d_out=d_out, bias=bias)
    x = jax.random.normal(jax.random.PRNGKey(seed + 10), (n, d_in))
    y = jax.random.normal(jax.random.PRNGKey(seed + 20), (n, d_out))

    def loss(q, skip=None):
        return jnp.mean((growth.mlp_apply(q, x, growth.relu1, skip) - y) ** 2)

    return p, x, y, loss


def test_skip_gradient_matrix_equals_closed_form():
    p, x, y, loss = _setup()
    m = growth.skip_gradient_matrix(lambda s: loss(p, s), 4, 5)
    pn = {k: np.asarray(v) for k, v in p.items()}
    delta = 2 * (_np_mlp(pn, np.asarray(x)) - np.asarray(y)) / y.size  # dL/dz of the mean squared error
    ref = np.asarray(x).T @ delta
    np.testing.assert_allclose(np.asarray(m), ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(growth.dense_gradient_matrix(x, delta)), ref, rtol=1e-5, atol=1e-7)
    assert m.shape == (4, 5) and m.dtype == jnp.float32


def test_dense_gradient_matrix_bad_shapes():
    with pytest.raises(ValueError, match="batch"):
        growth.dense_gradient_matrix(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="h and delta"):
        growth.dense_gradient_matrix(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="callable"):
        growth.skip_gradient_matrix(3, 2, 2)


@pytest.mark.parametrize("d0", [0.0, 0.5, 1.0])
def test_new_neuron_gradient_is_d0_times_M_w(d0):
    """Eq. (1): dL/dW_in^new = f'(0) M w, checked by autodiff after a real growth step."""
    p, x, y, _ = _setup(bias=True)
    act = lambda z: growth.relu_d0(z, d0)  # noqa: E731
    loss = lambda q, s=None: jnp.mean((growth.mlp_apply(q, x, act, s) - y) ** 2)  # noqa: E731
    m = np.asarray(growth.skip_gradient_matrix(lambda s: loss(p, s), 4, 5))
    w = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    q, active = growth.grow_dense(p, 3, w)
    assert int(active) == 5
    assert float(loss(q)) == pytest.approx(float(loss(p)), abs=1e-7)  # function preserved
    g = np.asarray(jax.grad(loss)(q)["w1"])
    np.testing.assert_allclose(g[:, 3:5], d0 * m @ w.T, rtol=1e-4, atol=1e-7)
    assert float(growth.slot_grad_norm(g, 3, 2)) == pytest.approx(np.linalg.norm(d0 * m @ w.T), rel=1e-4, abs=1e-7)


def test_exact_growth_matrix_matches_dense_M():
    p, x, y, loss = _setup(bias=False)
    m = growth.skip_gradient_matrix(lambda s: loss(p, s), 4, 5)

    def grad_in(w):
        q, _ = growth.grow_dense(p, 3, w[None])
        return jax.grad(loss)(q)["w1"][:, 3]

    e = growth.exact_growth_matrix(grad_in, 5)
    assert e.shape == (4, 5)
    np.testing.assert_allclose(np.asarray(e), np.asarray(m), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="callable"):
        growth.exact_growth_matrix(None, 5)


# --------------------------------------------------------------------------- directions
def test_topk_directions_match_numpy_svd_and_are_optimal():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 4)).astype(np.float32)
    d, s = growth.topk_directions(m, 3)
    d, s = np.asarray(d), np.asarray(s)
    _, s_ref, vt = np.linalg.svd(m.astype(np.float64))
    np.testing.assert_allclose(s, s_ref[:3], rtol=1e-5)
    for j in range(3):
        assert abs(abs(d[j] @ vt[j]) - 1) < 1e-5  # same direction up to sign
        assert d[j][np.argmax(np.abs(d[j]))] > 0  # deterministic sign
    np.testing.assert_allclose(d @ d.T, np.eye(3), atol=1e-5)
    # optimality: no unit direction (of 2000 random ones) beats the top one
    w = rng.normal(size=(2000, 4))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    assert np.linalg.norm(m @ w.T, axis=0).max() <= np.linalg.norm(m @ d[0]) + 1e-5
    assert np.linalg.norm(m @ d[0]) == pytest.approx(s_ref[0], rel=1e-5)


def test_topk_directions_sign_is_deterministic_under_negation():
    m = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    d1, _ = growth.topk_directions(m, 2)
    d2, _ = growth.topk_directions(-m, 2)
    np.testing.assert_allclose(np.asarray(d1), np.asarray(d2), atol=1e-5)


def test_topk_directions_rank_deficient_fill():
    m = np.outer(np.arange(1.0, 4.0), np.array([1.0, 0, 0, 0])).astype(np.float32)  # rank 1, (3, 4)
    d, s = growth.topk_directions(m, 4)
    d, s = np.asarray(d), np.asarray(s)
    assert d.shape == (4, 4) and s.shape == (4,)
    np.testing.assert_allclose(d @ d.T, np.eye(4), atol=1e-5)
    np.testing.assert_allclose(s[1:], 0, atol=1e-5)
    np.testing.assert_allclose(d[0], [1, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize("m, k, match", [(np.zeros(3), 1, "2-D"), (np.zeros((3, 2)), 3, "k must"), (np.zeros((3, 2)), 0, "k must")])
def test_topk_directions_bad_input(m, k, match):
    with pytest.raises(ValueError, match=match):
        growth.topk_directions(m, k)


def test_random_directions_unit_norm_and_kinds():
    u = np.asarray(growth.random_directions(jax.random.PRNGKey(0), 500, 3, "uniform"))
    g = np.asarray(growth.random_directions(jax.random.PRNGKey(0), 500, 3, "gaussian"))
    assert u.shape == g.shape == (500, 3) and u.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1, rtol=1e-5)
    assert np.all(u >= 0) and np.any(g < 0)
    assert abs(g.mean()) < 0.1  # isotropic
    with pytest.raises(ValueError, match="kind"):
        growth.random_directions(jax.random.PRNGKey(0), 1, 3, "normal")
    with pytest.raises(ValueError, match="k must"):
        growth.random_directions(jax.random.PRNGKey(0), 0, 3)


def test_scale_directions_uses_mean_norm_of_active_rows():
    w_out = np.zeros((5, 2), np.float32)
    w_out[0] = [3, 4]  # norm 5
    w_out[1] = [0, 1]  # norm 1
    w_out[3] = [100, 0]  # inactive slot: must be ignored
    dirs = np.array([[2.0, 0.0], [1.0, 1.0]], np.float32)
    out = np.asarray(growth.scale_directions(dirs, w_out, 2, scale=0.5))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 0.5 * 3.0, rtol=1e-6)
    np.testing.assert_allclose(out[0], [1.5, 0.0], rtol=1e-6)
    assert float(growth.mean_active_norm(w_out, 2)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="dirs"):
        growth.scale_directions(np.ones((1, 3)), w_out, 2)
    with pytest.raises(ValueError, match="w_out"):
        growth.mean_active_norm(np.ones(3), 1)


# --------------------------------------------------------------------------- growth
def test_grow_dense_writes_slots_like_numpy():
    p = _params(bias=False)
    out = np.arange(10, dtype=np.float32).reshape(2, 5)
    inc = np.ones((4, 2), np.float32)
    q, a = growth.grow_dense(p, 3, out, inc)
    ref_w2 = np.asarray(p["w2"]).copy()
    ref_w2[3:5] = out
    ref_w1 = np.asarray(p["w1"]).copy()
    ref_w1[:, 3:5] = inc
    np.testing.assert_array_equal(np.asarray(q["w2"]), ref_w2)
    np.testing.assert_array_equal(np.asarray(q["w1"]), ref_w1)
    assert int(a) == 5
    q0, _ = growth.grow_dense(p, 3, out)
    np.testing.assert_array_equal(np.asarray(q0["w1"]), np.asarray(p["w1"]))


def test_grow_dense_traced_active_compiles_once():
    p = _params(bias=False)
    calls = []

    @jax.jit
    def g(p, a):
        calls.append(1)
        return growth.grow_dense(p, a, jnp.ones((1, 5)))

    for a in (3, 4, 5):
        p, _ = g(p, jnp.int32(a))
    assert len(calls) == 1
    np.testing.assert_array_equal(np.asarray(p["w2"])[3:6], 1.0)
    # vmap over a batch of models with different widths
    ps = jax.tree_util.tree_map(lambda v: jnp.stack([v, v]), _params(bias=False))
    qs, a = jax.vmap(lambda q, a: growth.grow_dense(q, a, jnp.ones((1, 5))))(ps, jnp.array([3, 4]))
    assert list(np.asarray(a)) == [4, 5]
    assert np.all(np.asarray(qs["w2"])[0, 3] == 1) and np.all(np.asarray(qs["w2"])[1, 4] == 1)


def test_grow_dense_bad_input():
    p = _params(bias=False)
    with pytest.raises(ValueError, match="out_rows"):
        growth.grow_dense(p, 3, np.ones((1, 4)))
    with pytest.raises(ValueError, match="in_cols"):
        growth.grow_dense(p, 3, np.ones((1, 5)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="cannot grow"):
        growth.grow_dense(p, 0, np.ones((7, 5)))
    with pytest.raises(ValueError, match="k must"):
        growth.slot_grad_norm(np.ones((4, 6)), 0, 7)
    with pytest.raises(ValueError, match="grad_w1"):
        growth.slot_grad_norm(np.ones(4), 0, 1)


def test_optimizer_state_carries_over_and_zero_slots_stay_zero():
    """Padded growth == carry_optimizer=True: momentum of old weights survives, new slots start at 0."""
    import optax

    p, x, y, loss = _setup(bias=False)
    tx = optax.sgd(0.1, momentum=0.9)
    st = tx.init(p)
    for _ in range(3):
        g = jax.grad(loss)(p)
        u, st = tx.update(g, st, p)
        p = optax.apply_updates(p, u)
    assert np.all(np.asarray(p["w1"])[:, 3:] == 0) and np.all(np.asarray(p["w2"])[3:] == 0)
    mom = np.asarray(st[0].trace["w2"])
    assert np.all(mom[3:] == 0) and np.any(mom[:3] != 0)


# --------------------------------------------------------------------------- methods
def test_growth_candidates_scaled_and_gradmax_is_best():
    p = _params(seed=3, bias=False)
    m = jax.random.normal(jax.random.PRNGKey(4), (4, 5))
    top, uni, gau, sigma = growth.growth_candidates(m, p["w2"], 3, jax.random.PRNGKey(5), 2, 0.5, 7)
    assert top.shape == (2, 5) and uni.shape == gau.shape == (7, 2, 5) and sigma.shape == (2,)
    c = 0.5 * float(growth.mean_active_norm(p["w2"], 3))
    for rows in (top[None], uni, gau):
        np.testing.assert_allclose(np.linalg.norm(np.asarray(rows), axis=-1), c, rtol=1e-5)
    assert np.all(np.asarray(uni) >= 0)                                  # the official all-positive draws
    g = lambda r: np.linalg.norm(np.asarray(m) @ np.asarray(r).T)        # noqa: E731  ||M W^T||_F
    assert all(g(top) >= g(r) * (1 - 1e-6) for r in np.concatenate([uni, gau]))
    np.testing.assert_allclose(g(top[:1]), c * float(sigma[0]), rtol=1e-5)
    with pytest.raises(ValueError, match="n_draws"):
        growth.growth_candidates(m, p["w2"], 3, jax.random.PRNGKey(5), 2, 0.5, 0)


def test_grow_by_method_indices_traced():
    p = _params(seed=6, bias=False)
    m = jax.random.normal(jax.random.PRNGKey(7), (4, 5))
    key = jax.random.PRNGKey(8)
    top, uni, gau, _ = growth.growth_candidates(m, p["w2"], 3, key, 1, 1.0, 1)
    f = jax.jit(lambda meth: growth.grow_by_method(p, 3, m, key, meth, 1, 1.0))
    for meth, rows in ((0, top), (1, uni[0]), (2, gau[0])):
        q, a = f(jnp.int32(meth))
        assert int(a) == 4
        np.testing.assert_allclose(np.asarray(q["w2"])[3:4], np.asarray(rows), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(q["w1"]), np.asarray(p["w1"]))   # zero fan-in kept
    q, a = f(jnp.int32(growth.METHOD_NONE))
    assert int(a) == 3 and all(np.array_equal(np.asarray(q[n]), np.asarray(p[n])) for n in p)
