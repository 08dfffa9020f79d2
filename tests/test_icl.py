"""Tests for jaxpapers.icl: the LSA layer, the GD construction (Prop. 1), GD/GD++ references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import icl
from jaxpapers.tasks import sample_linear, sample_sine, to_alternating

KEY = jax.random.PRNGKey(0)
N, DX = 10, 10


def numpy_lsa(params, tokens, n_context):
    """Eq. (1) with explicit loops over tokens, heads and context points (float64)."""
    t = np.asarray(tokens, np.float64)
    wq, wk, wv, wo = (np.asarray(params[k], np.float64) for k in ("wq", "wk", "wv", "wo"))
    out = t.copy()
    for j in range(t.shape[0]):
        upd = np.zeros(t.shape[1])
        for h in range(wq.shape[1]):
            q = t[j] @ wq[:, h]
            for i in range(n_context):
                upd += (q @ (t[i] @ wk[:, h])) * (t[i] @ wv[:, h] @ wo[h])
        out[j] += upd
    return out


def numpy_gd(tokens, n_context, d_x, eta, w0, steps):
    t = np.asarray(tokens, np.float64)
    w = np.array(w0, np.float64)
    for _ in range(steps):
        grad = np.zeros_like(w)
        for i in range(n_context):
            x, y = t[i, :d_x], t[i, d_x:]
            grad += np.outer(w @ x - y, x) / n_context
        w = w - eta * grad
    return w @ t[-1, :d_x]


def test_lsa_layer_matches_numpy_loop():
    tokens, _, _ = sample_linear(KEY, 3, n_context=4, d_x=3, d_y=2)
    p = icl.init_lsa(jax.random.PRNGKey(1), 5, key_size=4, num_heads=2, init_scale=0.5)
    out = icl.lsa_layer(p, tokens, 4)
    assert out.shape == tokens.shape and out.dtype == jnp.float32
    for b in range(3):
        np.testing.assert_allclose(np.asarray(out[b]), numpy_lsa(p, tokens[b], 4), rtol=1e-4, atol=1e-5)


def test_query_is_not_a_key():
    tokens, _, _ = sample_linear(KEY, 2, n_context=4, d_x=3)
    p = icl.init_lsa(jax.random.PRNGKey(1), 4, init_scale=0.5)
    moved = tokens.at[:, -1, :].add(5.0)
    a = icl.lsa_layer(p, tokens, 4)
    b = icl.lsa_layer(p, moved, 4)
    # context tokens never see the query
    np.testing.assert_allclose(np.asarray(a[:, :4]), np.asarray(b[:, :4]), rtol=1e-6)


@pytest.mark.parametrize("eta", [0.1, 1.0, 6.06, 15.0])
@pytest.mark.parametrize("d_y", [1, 3])
def test_construction_is_one_gd_step(eta, d_y):
    tokens, _, _ = sample_linear(jax.random.PRNGKey(d_y), 1000, d_y=d_y)
    w0 = jax.random.normal(jax.random.PRNGKey(7), (d_y, DX))
    p = icl.gd_construction(DX, d_y, eta, N, w0=w0)
    lsa = icl.lsa_predict([p], icl.with_initial_guess(tokens, w0, DX), N, d_y)
    gd = icl.gd_predict(tokens, N, DX, eta, w0=w0)
    assert lsa.shape == (1000, d_y)
    scale = max(1.0, float(jnp.abs(gd).max()))
    assert float(jnp.abs(lsa - gd).max()) < 1e-5 * scale * max(1.0, eta / 6.0)


def test_gd_predict_matches_numpy_loop():
    tokens, _, _ = sample_linear(KEY, 4, n_context=5, d_x=3, d_y=2)
    w0 = np.random.default_rng(0).normal(size=(2, 3))
    ours = icl.gd_predict(tokens, 5, 3, 0.7, steps=3, w0=jnp.asarray(w0, jnp.float32))
    for b in range(4):
        np.testing.assert_allclose(np.asarray(ours[b]), numpy_gd(tokens[b], 5, 3, 0.7, w0, 3), rtol=1e-4, atol=1e-5)


def test_stacked_construction_is_k_gd_steps_and_readouts():
    tokens, _, _ = sample_linear(KEY, 200)
    p = icl.gd_construction(DX, 1, 3.0, N)
    outs = icl.lsa_readouts([p] * 3, tokens, N, 1)
    assert outs.shape == (3, 200, 1)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(outs[k]), np.asarray(icl.gd_predict(tokens, N, DX, 3.0, steps=k + 1)),
                                   atol=1e-5)


def test_gdpp_construction_matches_explicit_gdpp():
    tokens, _, _ = sample_linear(KEY, 300, d_y=2)
    etas, gammas = [5.0, 8.0, 3.0], [0.5, 1.5, 0.0]
    layers = [icl.gd_construction(DX, 2, e, N, gamma=g) for e, g in zip(etas, gammas)]
    np.testing.assert_allclose(np.asarray(icl.lsa_predict(layers, tokens, N, 2)),
                               np.asarray(icl.gdpp_predict(tokens, N, DX, etas, gammas)), atol=2e-5)
    # gamma = 0 is plain GD
    np.testing.assert_allclose(np.asarray(icl.gdpp_predict(tokens, N, DX, [2.0, 2.0], [0.0, 0.0])),
                               np.asarray(icl.gd_predict(tokens, N, DX, 2.0, steps=2)), atol=1e-5)


def test_gdpp_precondition_numpy():
    tokens, _, _ = sample_linear(KEY, 1, n_context=6, d_x=3)
    t = np.asarray(tokens[0], np.float64)
    x, y, xq = t[:6, :3], t[:6, 3:], t[6, :3]
    pred = np.zeros(1)
    for eta, gamma in [(2.0, 1.0), (3.0, 0.5)]:
        dw = eta * (y.T @ x) / 6
        pred += dw @ xq
        y = y - x @ dw.T
        s = x.T @ x / 6
        x, xq = x - gamma * x @ s.T, xq - gamma * s @ xq
    ours = icl.gdpp_predict(tokens, 6, 3, [2.0, 3.0], [1.0, 0.5])
    np.testing.assert_allclose(np.asarray(ours[0]), pred, rtol=1e-4, atol=1e-6)


def test_analytic_loss_matches_monte_carlo():
    tokens, targets, _ = sample_linear(KEY, 20_000)
    for eta in (2.0, 6.0):
        mc = float(icl.regression_loss(icl.gd_predict(tokens, N, DX, eta), targets))
        np.testing.assert_allclose(mc, icl.gd_expected_loss(eta, DX, N), rtol=0.03)
    # the paper-text range U(-1, 1) gives 4x the loss at eta / 4
    np.testing.assert_allclose(icl.gd_expected_loss(6.0 / 4, DX, N, input_range=2.0),
                               4 * icl.gd_expected_loss(6.0, DX, N), rtol=1e-12)


def test_optimal_eta_values_and_minimum():
    eta = icl.gd_optimal_eta(DX, N)
    np.testing.assert_allclose(eta, 6.0606, rtol=1e-4)
    np.testing.assert_allclose(icl.gd_expected_loss(eta, DX, N), 0.20623, rtol=1e-4)
    grid = np.linspace(0.1, 12, 2001)
    assert abs(grid[np.argmin(icl.gd_expected_loss(grid, DX, N))] - eta) < 0.01
    np.testing.assert_allclose(icl.uniform_moments(1.0), (1 / 12, 1 / 80))


def test_effective_eta_and_scale_symmetry():
    p = icl.gd_construction(DX, 1, 4.0, N)
    np.testing.assert_allclose(float(icl.effective_eta(p, DX, N)), 4.0, rtol=1e-6)
    c = 3.0
    q = dict(p, wq=p["wq"] * c, wv=p["wv"] / c)  # symmetry: same function
    tokens, _, _ = sample_linear(KEY, 50)
    np.testing.assert_allclose(np.asarray(icl.lsa_predict([q], tokens, N, 1)),
                               np.asarray(icl.lsa_predict([p], tokens, N, 1)), rtol=1e-5, atol=1e-6)
    m, v = icl.normalise_products(q, DX)
    m0, v0 = icl.normalise_products(p, DX)
    np.testing.assert_allclose(np.asarray(m), np.asarray(m0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(v), np.asarray(v0), atol=1e-6)


def test_weight_products_numpy_and_roundtrip():
    p = icl.init_lsa(KEY, 5, key_size=3, num_heads=2, init_scale=0.5)
    m, v = icl.weight_products(p)
    assert m.shape == v.shape == (2, 5, 5)
    wq, wk, wv, wo = (np.asarray(p[k]) for k in ("wq", "wk", "wv", "wo"))
    np.testing.assert_allclose(np.asarray(m[1]), wq[:, 1] @ wk[:, 1].T, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(v[0]), wv[:, 0] @ wo[0], rtol=1e-5)
    p1 = icl.init_lsa(KEY, 11, key_size=7, init_scale=0.3)
    r = icl.params_from_products(*[a[0] for a in icl.weight_products(p1)])
    tokens, _, _ = sample_linear(KEY, 20)
    np.testing.assert_allclose(np.asarray(icl.lsa_layer(r, tokens, N)), np.asarray(icl.lsa_layer(p1, tokens, N)),
                               rtol=1e-4, atol=1e-6)


def test_interpolation_endpoints_and_midpoint():
    a = icl.gd_construction(DX, 1, 4.0, N)
    b = icl.gd_construction(DX, 1, 8.0, N)
    tokens, _, _ = sample_linear(KEY, 50)
    mid = icl.interpolate(a, dict(b, wq=b["wq"] * 2, wv=b["wv"] / 2), 0.5, DX)
    np.testing.assert_allclose(float(icl.effective_eta(mid, DX, N)), 6.0, rtol=1e-5)
    end = icl.interpolate(a, b, 0.0, DX)
    np.testing.assert_allclose(np.asarray(icl.lsa_predict([end], tokens, N, 1)),
                               np.asarray(icl.lsa_predict([a], tokens, N, 1)), rtol=1e-5, atol=1e-6)


def test_prediction_blocks_keep_one_layer_predictions():
    p = icl.init_lsa(KEY, 11, init_scale=0.4)
    q = icl.prediction_blocks(p, DX)
    tokens, _, _ = sample_linear(KEY, 40)
    np.testing.assert_allclose(np.asarray(icl.lsa_predict([q], tokens, N, 1)),
                               np.asarray(icl.lsa_predict([p], tokens, N, 1)), rtol=1e-3, atol=1e-6)
    m, v = icl.weight_products(q)
    assert np.all(np.asarray(m[0, DX:]) == 0) and np.all(np.asarray(v[0, :, :DX]) == 0)
    np.testing.assert_allclose(float(jnp.mean(jnp.diagonal(m[0, :DX, :DX]))), 1.0, rtol=1e-5)


def test_rescale_eta():
    p = icl.gd_construction(DX, 1, 4.0, N)
    np.testing.assert_allclose(float(icl.effective_eta(icl.rescale_eta(p, 0.5), DX, N)), 2.0, rtol=1e-6)


def test_regression_loss_numpy():
    a = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    b = np.random.default_rng(2).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_allclose(float(icl.regression_loss(jnp.asarray(a), jnp.asarray(b))),
                               0.5 * ((a - b) ** 2).sum() / 7, rtol=1e-5)


def test_gradients_of_lsa_match_finite_differences():
    tokens, targets, _ = sample_linear(KEY, 16, n_context=4, d_x=2)
    p = icl.init_lsa(jax.random.PRNGKey(3), 3, init_scale=0.5)
    f = lambda p: icl.regression_loss(icl.lsa_predict([p, p], tokens, 4, 1), targets)
    g = jax.grad(f)(p)
    h = 1e-2
    for name, idx in (("wq", (0, 0, 1)), ("wo", (0, 2, 2)), ("wv", (2, 0, 0))):
        e = jnp.zeros_like(p[name]).at[idx].set(h)
        fd = (f(dict(p, **{name: p[name] + e})) - f(dict(p, **{name: p[name] - e}))) / (2 * h)
        np.testing.assert_allclose(float(g[name][idx]), float(fd), rtol=2e-2, atol=1e-5)


def test_gd_gradient_is_the_loss_gradient():
    tokens, _, _ = sample_linear(KEY, 1, n_context=N, d_x=DX, d_y=2)
    t = tokens[0]
    w0 = jax.random.normal(jax.random.PRNGKey(4), (2, DX))
    loss = lambda w: 0.5 * jnp.mean(jnp.sum((t[:N, :DX] @ w.T - t[:N, DX:]) ** 2, -1))
    w1 = w0 - 0.3 * jax.grad(loss)(w0)
    np.testing.assert_allclose(np.asarray(icl.gd_predict(t, N, DX, 0.3, w0=w0)), np.asarray(w1 @ t[-1, :DX]),
                               rtol=1e-5, atol=1e-6)


def test_positions_copy_and_sine_models_shapes():
    pe = icl.sinusoidal_positions(7, 4)
    assert pe.shape == (7, 4)
    np.testing.assert_allclose(np.asarray(pe[3]), [np.sin(3), np.cos(3), np.sin(3 / 100), np.cos(3 / 100)], rtol=1e-5)
    tokens, _, _ = sample_linear(KEY, 5, n_context=4, d_x=3)
    alt = to_alternating(tokens, 3)
    cp = icl.init_copy_model(KEY, 4, pos_size=6, key_size=8)
    assert icl.copy_model_predict(cp, alt, 1).shape == (5, 1)
    st, _, _ = sample_sine(KEY, 5)
    assert icl.sine_model_predict(icl.init_sine_model(KEY, width=8, hidden=16), st).shape == (5, 1)
    assert icl.sine_gd_predict(icl.init_sine_gd(KEY, width=8, hidden=16), st).shape == (5, 1)


def test_sine_gd_is_constructed_lsa_on_features():
    st, _, _ = sample_sine(KEY, 6)
    p = icl.init_sine_gd(KEY, width=8, hidden=16)
    phi = jax.vmap(lambda t: jax.nn.gelu(t[:, :1] @ p["features"][0]["w"] + p["features"][0]["b"])
                   @ p["features"][1]["w"] + p["features"][1]["b"])(st)
    feats = jnp.concatenate([phi, st[..., 1:]], -1)
    c = icl.gd_construction(8, 1, jnp.exp(p["log_eta"]), 10)
    np.testing.assert_allclose(np.asarray(icl.sine_gd_predict(p, st)), np.asarray(icl.lsa_predict([c], feats, 10, 1)),
                               rtol=1e-4, atol=1e-6)


def test_bad_arguments():
    tokens = jnp.zeros((2, 11, 11))
    p = icl.gd_construction(DX, 1, 1.0, N)
    with pytest.raises(ValueError, match="n_context"):
        icl.lsa_layer(p, tokens, 11)
    with pytest.raises(ValueError, match="n_context"):
        icl.lsa_layer(p, tokens, 0)
    with pytest.raises(ValueError, match="layers"):
        icl.lsa_readouts([], tokens, N, 1)
    with pytest.raises(ValueError, match="w0"):
        icl.gd_construction(DX, 1, 1.0, N, w0=jnp.zeros((2, DX)))
    with pytest.raises(ValueError, match="w0"):
        icl.with_initial_guess(tokens, jnp.zeros((1, 3)), DX)
    with pytest.raises(ValueError, match="d_x"):
        icl.gd_predict(tokens, N, 11, 1.0)
    with pytest.raises(ValueError, match="steps"):
        icl.gd_predict(tokens, N, DX, 1.0, steps=0)
    with pytest.raises(ValueError, match="etas"):
        icl.gdpp_predict(tokens, N, DX, [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="input_range"):
        icl.uniform_moments(0.0)
    with pytest.raises(ValueError, match="single-head"):
        icl.effective_eta(icl.init_lsa(KEY, 11, num_heads=2), DX, N)
    with pytest.raises(ValueError, match="pred"):
        icl.regression_loss(jnp.zeros((3, 1)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match="square"):
        icl.params_from_products(jnp.zeros((3, 4)), jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="eta"):
        icl.init_sine_gd(KEY, eta=0.0)
    with pytest.raises(ValueError, match="even"):
        icl.sinusoidal_positions(3, 5)


# ----------------------------------------------------------------------------- the authors' initialiser


def test_fan_in_std_matches_the_authors_scale():
    # VarianceScaling(0.002) with fan-in 11: sqrt(0.002 / 11) / 0.8796 = 0.0153 (not 0.002)
    np.testing.assert_allclose(icl.fan_in_std(0.002, 11), 0.015330, rtol=1e-3)
    np.testing.assert_allclose(icl.fan_in_std(0.002 / 3, 11), 0.008851, rtol=1e-3)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="scale"):
            icl.fan_in_std(bad, 11)
    with pytest.raises(ValueError, match="fan_in"):
        icl.fan_in_std(0.002, 0)


def test_init_lsa_fan_in_is_a_truncated_normal_with_the_fan_in_std():
    p = icl.init_lsa_fan_in(jax.random.PRNGKey(2), 11, scale=0.5, key_size=11, num_heads=2)
    assert p["wq"].shape == p["wk"].shape == p["wv"].shape == (11, 2, 11) and p["wo"].shape == (2, 11, 11)
    assert set(p) == {"wq", "wk", "wv", "wo"}
    for name, fan_in in (("wq", 11), ("wk", 11), ("wv", 11), ("wo", 22)):
        w = np.asarray(p[name])
        std = icl.fan_in_std(0.5, fan_in)
        assert np.abs(w).max() <= 2 * std * 1.0001  # truncated at two stddevs
        np.testing.assert_allclose(w.std(), np.sqrt(0.5 / fan_in), rtol=0.12)  # variance = scale / fan_in
    # four independent matrices
    assert not np.allclose(np.asarray(p["wq"]), np.asarray(p["wk"]))
    with pytest.raises(ValueError, match="d_model"):
        icl.init_lsa_fan_in(KEY, 0)


def test_effective_gamma_reads_the_construction():
    p = icl.gd_construction(DX, 1, 5.0, N, gamma=1.7)
    np.testing.assert_allclose(float(icl.effective_gamma(p, DX, N)), 1.7, rtol=1e-6)
    np.testing.assert_allclose(float(icl.effective_eta(p, DX, N)), 5.0, rtol=1e-6)
    # invariant under the scale symmetry
    q = dict(p, wq=p["wq"] * 3.0, wo=p["wo"] / 3.0)
    np.testing.assert_allclose(float(icl.effective_gamma(q, DX, N)), 1.7, rtol=1e-5)


def test_fit_gdpp_beats_gd_and_recovers_gd_for_one_step():
    tokens, targets, _ = sample_linear(jax.random.PRNGKey(4), 2_000)
    gd2 = min(float(icl.regression_loss(icl.gd_predict(tokens, N, DX, e, steps=2), targets))
              for e in np.arange(3.0, 9.0, 0.25))
    etas, gammas, loss = icl.fit_gdpp(tokens, targets, N, DX, 2)
    assert len(etas) == len(gammas) == 2 and etas[0] == etas[1] and gammas[0] == gammas[1]
    assert gammas[0] > 0 and loss < 0.9 * gd2
    pred = icl.gdpp_predict(tokens, N, DX, etas, gammas)
    np.testing.assert_allclose(float(icl.regression_loss(pred, targets)), loss, rtol=1e-5)
    etas_ns, gammas_ns, loss_ns = icl.fit_gdpp(tokens, targets, N, DX, 2, shared=False)
    assert gammas_ns[-1] == 0.0 and loss_ns <= loss * 1.001
    # one step: GD++ is GD, and the fit finds the optimal learning rate of eq. (4)
    etas1, _, _ = icl.fit_gdpp(tokens, targets, N, DX, 1, shared=False)
    np.testing.assert_allclose(etas1[0], icl.gd_optimal_eta(DX, N), rtol=0.1)
