"""Tests for jaxpapers.embed: objectives, gradients, pressure, z-Hessian, optimisers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import affinities as aff
from jaxpapers import embed

KINDS = ["ee", "ssne", "tsne"]
LAMS = {"ee": 10.0, "ssne": 1.5, "tsne": 1.5}


def x64():
    """Float64 context across jax versions (jax.enable_x64 on new jax, experimental on old)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older jax

    return enable_x64()


def _problem(n=40, d=2, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 6))
    p = np.asarray(aff.joint(aff.entropic_affinities(y.astype(np.float32), 8.0)[0]), np.float64)
    p = (p + p.T) / 2
    x = rng.normal(size=(n, d))
    return x.astype(dtype), p.astype(dtype)


def _naive_objective(x, p, kind, lam, wneg=None):
    """Double loop over pairs (the definition, no vectorisation)."""
    n = len(x)
    att, rep = 0.0, 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = float(np.sum((x[i] - x[j]) ** 2))
            att += p[i, j] * (np.log1p(d) if kind == "tsne" else d)
            rep += (1 / (1 + d)) if kind == "tsne" else np.exp(-d) * (1 / n**2 if kind == "ee" else 1.0)
    return att + lam * (rep if kind == "ee" else np.log(rep))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_sq_distances_match_loops_and_blocked_shapes(d):
    x = np.random.default_rng(d).normal(size=(7, d)).astype(np.float32)
    ref = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(7)] for i in range(7)])
    out = embed.sq_distances(jnp.asarray(x))
    assert out.shape == (7, 7) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert np.all(np.diag(np.asarray(out)) == 0)  # differences, not |a|^2 + |b|^2 - 2ab
    # the same helper on (rows, neighbours, d) pairs: the sparse form's layout
    idx = np.array([[1, 2], [0, 6], [3, 3], [5, 4], [0, 1], [2, 2], [6, 0]])
    out_nb = embed._sq_dist(jnp.asarray(x), jnp.asarray(x)[idx])
    assert out_nb.shape == (7, 2)
    np.testing.assert_allclose(out_nb, ref[np.arange(7)[:, None], idx], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_objective_matches_naive_loops(kind):
    x, p = _problem(n=15)
    ref = _naive_objective(x.astype(np.float64), p.astype(np.float64), kind, LAMS[kind])
    assert abs(float(embed.objective(x, p, kind, LAMS[kind])) - ref) < 1e-5 * max(1, abs(ref))
    assert abs(embed.objective_np(x, p, kind, LAMS[kind]) - ref) < 1e-9 * max(1, abs(ref))


@pytest.mark.parametrize("kind", KINDS)
def test_closed_form_gradient_matches_autodiff_and_finite_differences(kind):
    with x64():
        x, p = _problem(dtype=np.float64)
        x, p = jnp.asarray(x), jnp.asarray(p)
        f = lambda x: embed.objective(x, p, kind, LAMS[kind])  # noqa: E731
        g = embed.gradient(x, p, kind, LAMS[kind])
        assert g.dtype == jnp.float64 and g.shape == x.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(f)(x)), atol=1e-12)
        e, g2 = embed.value_and_grad(x, p, kind, LAMS[kind])
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g), atol=1e-13)
        assert abs(float(e) - float(f(x))) < 1e-12
        h = 1e-6
        for (i, k) in [(0, 0), (7, 1), (39, 0)]:
            dx = jnp.zeros_like(x).at[i, k].set(h)
            fd = (f(x + dx) - f(x - dx)) / (2 * h)
            assert abs(float(fd) - float(g[i, k])) < 1e-7


@pytest.mark.parametrize("kind", KINDS)
def test_pressure_equals_autodiff_z_hessian(kind):
    """The claim of Sec. 2: d^2E/dz^2 at z = 0 is 4 L(A); its diagonal is the pressure."""
    with x64():
        x, p = _problem(n=30, dtype=np.float64)
        x, p = jnp.asarray(x), jnp.asarray(p)
        lam = LAMS[kind]
        ez = lambda z: embed.objective(jnp.concatenate([x, z[:, None]], 1), p, kind, lam)  # noqa: E731
        z0 = jnp.zeros(30)
        hess = jax.hessian(ez)(z0)
        np.testing.assert_allclose(np.asarray(jax.grad(ez)(z0)), 0.0, atol=1e-15)
        np.testing.assert_allclose(np.asarray(embed.z_hessian(x, p, kind, lam)), np.asarray(hess), atol=1e-10)
        np.testing.assert_allclose(np.asarray(embed.pressure(x, p, kind, lam)), np.diag(np.asarray(hess)),
                                   atol=1e-10)
        np.testing.assert_allclose(np.asarray(hess).sum(1), 0.0, atol=1e-10)  # constant z is a null direction


@pytest.mark.parametrize("kind", KINDS)
def test_blocked_forms_match_dense(kind):
    x, p = _problem(n=53)
    lam = LAMS[kind]
    e, g = embed.value_and_grad(x, p, kind, lam, alpha=2.0)
    pr = embed.pressure(x, p, kind, lam, alpha=2.0)
    e2, g2, pr2 = embed.dense_value_grad_pressure(x, p, kind, lam, alpha=2.0, block=16)
    # sparse form holding every non-zero of P
    idx = np.tile(np.arange(53), (53, 1)).astype(np.int32)
    e3, g3, pr3 = embed.blocked_value_grad_pressure(x, idx, p, kind, lam, alpha=2.0, block=10)
    for a, b in [(e2, e), (e3, e)]:
        assert abs(float(a) - float(e)) < 1e-5 * abs(float(e))
    scale = float(jnp.abs(g).max())
    for gg in (g2, g3):
        np.testing.assert_allclose(np.asarray(gg), np.asarray(g), atol=2e-5 * scale)
    for pp in (pr2, pr3):
        np.testing.assert_allclose(np.asarray(pp), np.asarray(pr), atol=2e-5 * float(jnp.abs(pr).max()))


def test_tsne_kl_matches_scikit_learn_exact():
    sk = pytest.importorskip("sklearn.manifold._t_sne")
    from scipy.spatial.distance import squareform

    x, p = _problem(n=50, dtype=np.float64)
    kl_sklearn, _ = sk._kl_divergence(x.ravel(), squareform(p, checks=False), 1, 50, 2)
    ours = embed.kl_from_objective(embed.objective_np(x, p, "tsne"), p)
    assert abs(ours - kl_sklearn) < 1e-7 * max(1.0, abs(kl_sklearn))
    assert abs(embed.kl_from_objective(float(embed.objective(x.astype(np.float32), p.astype(np.float32), "tsne")), p)
               - kl_sklearn) < 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_lambda_min_dense_and_lanczos(kind):
    x, p = _problem(n=40)
    val, vec = embed.lambda_min(x, p, kind, LAMS[kind])
    h = np.asarray(embed.z_hessian(x, p, kind, LAMS[kind]), np.float64)
    ref = np.linalg.eigvalsh(h)[0]
    assert abs(float(val) - ref) < 1e-5 * max(1, abs(ref))
    np.testing.assert_allclose(h @ np.asarray(vec), float(val) * np.asarray(vec), atol=1e-4)
    lv, _ = embed.lambda_min_lanczos(x, p, kind, LAMS[kind])
    assert abs(lv - ref) < 1e-4 * max(1e-3, abs(ref)) + 1e-6


def test_saddle_direction_lowers_objective():
    x, p = _problem(n=40)
    vg = embed.make_objective(jnp.asarray(p), "tsne", lam=1.0)
    xs, _ = embed.minimize(vg, jnp.asarray(x), 300)
    val, vec = embed.lambda_min(xs, p, "tsne", 1.0)
    assert float(val) < 0
    e0 = embed.objective_np(xs, p, "tsne", 1.0)
    e1 = embed.objective_np(np.concatenate([np.asarray(xs), 0.05 * np.asarray(vec)[:, None]], 1), p, "tsne", 1.0)
    assert e1 < e0


def test_optimisers_decrease_objective():
    x, p = _problem(n=60)
    p = jnp.asarray(p)
    vg = embed.make_objective(p, "tsne")
    x0 = 1e-3 * jax.random.normal(jax.random.PRNGKey(0), (60, 2))
    e_init = float(vg(x0)[0])
    xg, hist = embed.tsne_gd(vg, x0, 300, embed.TSNEConfig(learning_rate=10.0, exaggeration_steps=100))
    assert hist.shape == (300,) and float(vg(xg)[0]) < e_init
    b = 4 * embed.laplacian(p) + 1e-3 * jnp.eye(60)
    xs, hs = embed.spectral_direction(vg, x0, b, 100)
    assert np.all(np.diff(np.asarray(hs)) <= 1e-6) and float(hs[-1]) < e_init
    xl, hl = embed.minimize(vg, xg, 100)
    assert float(vg(xl)[0]) <= float(vg(xg)[0]) + 1e-6
    assert float(jnp.abs(vg(xl)[1]).max()) < 1e-3


def test_tsne_gd_energy_every_skips_only_the_objective():
    x, p = _problem(n=60)
    vg = embed.make_objective(jnp.asarray(p), "tsne")
    x0 = 1e-3 * jax.random.normal(jax.random.PRNGKey(1), (60, 2))
    cfg = embed.TSNEConfig(learning_rate=10.0, exaggeration_steps=40)
    x_all, h_all = embed.tsne_gd(vg, x0, 103, cfg)
    x_some, h_some = embed.tsne_gd(vg, x0, 103, cfg, energy_every=25)
    h_all, h_some = np.asarray(h_all), np.asarray(h_some)
    recorded = np.zeros(103, bool)
    recorded[[0, 25, 50, 75, 100, 102]] = True
    assert np.all(np.isnan(h_some) == ~recorded)
    np.testing.assert_allclose(h_some[recorded], h_all[recorded], rtol=1e-5)
    np.testing.assert_allclose(x_some, x_all, rtol=1e-4, atol=1e-6)  # the same iterates
    with pytest.raises(ValueError, match="energy_every"):
        embed.tsne_gd(vg, x0, 10, cfg, energy_every=0)


def test_lbfgs_solves_a_quadratic_pytree():
    a = jnp.array([1.0, 10.0, 100.0])
    f = lambda p, c: jnp.sum(a * (p["u"] - c) ** 2) + jnp.sum(p["v"] ** 2)  # noqa: E731
    params, hist = embed.lbfgs(f, {"u": jnp.zeros(3), "v": jnp.ones(2)}, 30, args=(jnp.float32(2.0),))
    np.testing.assert_allclose(np.asarray(params["u"]), 2.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(params["v"]), 0.0, atol=1e-4)


def test_pressured_points_moves_only_masked_z_and_large_mu_flattens():
    x, p = _problem(n=40)
    vg = embed.make_objective(jnp.asarray(p), "tsne", lam=1.0)
    xs, _ = embed.minimize(vg, jnp.asarray(x), 200)
    pr = embed.pressure(xs, p, "tsne", 1.0)
    mask = (pr < 0).astype(jnp.float32)
    assert 0 < float(mask.sum()) < 40
    mu_star = float(jnp.max(-pr)) / 2
    noise = jax.random.normal(jax.random.PRNGKey(1), (40,))  # not constant: constant z is a null direction
    z_lift = 0.1 * float(jnp.std(xs)) * noise
    z_small = 1e-2 * noise
    # mu = 0: the pressured points leave the plane
    xp, z, frames, used = embed.pressured_points(vg, xs, mask, z_lift, [0.0], 60)
    assert len(frames) == 1 and used == [0.0] and xp.shape == (40, 2)
    assert np.all(np.asarray(z)[np.asarray(mask) == 0] == 0)
    assert float(jnp.abs(z).max()) > float(jnp.abs(z_lift * mask).max())  # lifted further
    # mu > mu*: z = 0 is locally stable, a small lift decays
    _, z2, _, _ = embed.pressured_points(vg, xs, mask, z_small, [4 * mu_star], 60)
    assert float(jnp.abs(z2).max()) < 0.1 * float(jnp.abs(z_small * mask).max())
    # z_tol: the schedule keeps raising mu until every point is back in the plane
    _, z3, _, used3 = embed.pressured_points(vg, xp, mask, z, [mu_star], 30, z_tol=1e-3, growth=4.0)
    assert float(jnp.abs(z3).max()) < 1e-3 and len(used3) >= 1 and used3[-1] >= mu_star


def test_mu_schedule_starts_at_zero_and_scales_with_mu_star():
    pi = jnp.array([0.5, -0.2, -0.6, 1.0])
    mus = embed.mu_schedule(pi, (0.01, 3.0, 6))
    assert mus[0] == 0.0 and len(mus) == 7
    np.testing.assert_allclose(mus[1:], 0.3 * np.geomspace(0.01, 3.0, 6), rtol=1e-6)
    assert embed.mu_schedule(jnp.array([1.0, 2.0]))[1] > 0  # no pressured point: still a valid grid


def test_escape_vs_control_arms_budgets_and_masks():
    x, p = _problem(n=40)
    vg = embed.make_objective(jnp.asarray(p), "tsne", lam=1.0)
    xs, _ = embed.minimize(vg, jnp.asarray(x), 200)
    pr = embed.pressure(xs, p, "tsne", 1.0)
    cfg = embed.EscapeConfig(steps_per_mu=10, final_steps=20)
    p64 = np.asarray(p, np.float64)
    out = embed.escape_vs_control(vg, xs, jax.random.PRNGKey(0), pr, cfg, arms=embed.ARMS,
                                  energy_fn=lambda y: embed.objective_np(y, p64, "tsne"))
    assert set(out["x"]) == set(embed.ARMS) | {"base", "control"}
    assert out["n_lifted"] == int((pr < 0).sum()) and 0 < out["n_lifted"] < 40
    np.testing.assert_allclose(out["mu_star"], float(jnp.max(-pr)) / 2, rtol=1e-6)
    assert np.all(np.asarray(out["z0"])[np.asarray(out["mask"]) == 0] == 0)
    # pp ran len(mus_used) stages; the restart arms ran as many; the control got the largest budget
    assert out["budget"]["pp"] == len(out["mus_used"]) * 10 + 20 == out["budget"]["restart"]
    assert out["budget"]["control"] == max(v for k, v in out["budget"].items() if k != "control")
    assert all(y.shape == (40, 2) and np.all(np.isfinite(np.asarray(y))) for y in out["x"].values())
    # L-BFGS restarts from a converged point stay where they are (to float32 resolution)
    assert abs(out["E"]["restart"] - out["E"]["control"]) < 1e-4 * abs(out["E"]["control"])
    # the same key gives the same result; only pp (and the control) when asked for pp alone
    again = embed.escape_vs_control(vg, xs, jax.random.PRNGKey(0), pr, cfg, arms=("pp",))
    assert set(again["x"]) == {"base", "pp", "control"}
    np.testing.assert_allclose(np.asarray(again["x"]["pp"]), np.asarray(out["x"]["pp"]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="arms"):
        embed.escape_vs_control(vg, xs, jax.random.PRNGKey(0), pr, cfg, arms=("pp", "lift-all"))
    with pytest.raises(ValueError, match="pressure_values"):
        embed.escape_vs_control(vg, xs, jax.random.PRNGKey(0), pr[:5], cfg)


def test_escape_frees_points_stuck_behind_a_wall():
    """1-D t-SNE: a fragment of A moved behind B stays there under L-BFGS; the lift brings it back."""
    rng = np.random.default_rng(0)
    per, nf = 40, 5
    centers = np.zeros((3, 10))
    centers[:, 0] = [0.0, 8.0, 16.0]
    y = np.concatenate([c + rng.normal(size=(per, 10)) for c in centers]).astype(np.float32)
    p = aff.joint(aff.entropic_affinities(y, 10.0)[0])
    vg = embed.make_objective(p, "tsne")
    lab = np.repeat(np.arange(3), per)
    x0 = (3.0 * lab + 0.3 * rng.normal(size=3 * per)).astype(np.float32)[:, None]
    xs = np.array(embed.minimize(vg, jnp.asarray(x0), 600)[0])
    b = xs[per:2 * per, 0]
    side = np.sign(xs[2 * per:, 0].mean() - b.mean())
    xs[:nf, 0] = (b.max() if side > 0 else b.min()) + side * 0.5 * b.std() + 0.05 * rng.normal(size=nf)
    x_stuck, _ = embed.minimize(vg, jnp.asarray(xs), 800)
    p64 = np.asarray(p, np.float64)
    out = embed.escape_vs_control(vg, x_stuck, jax.random.PRNGKey(1), embed.pressure(x_stuck, p, "tsne"),
                                  embed.EscapeConfig(), arms=("pp",),
                                  energy_fn=lambda x: embed.objective_np(x, p64, "tsne"))
    assert out["E"]["pp"] < out["E"]["control"] * (1 - 0.01)


def test_bad_inputs_raise():
    x, p = _problem(n=10)
    with pytest.raises(ValueError, match="kind"):
        embed.objective(x, p, "umap")
    with pytest.raises(ValueError, match="P must"):
        embed.objective(x, p[:5], "tsne")
    with pytest.raises(ValueError, match="X must"):
        embed.pressure(x[0], p, "tsne")
    with pytest.raises(ValueError, match="steps"):
        embed.tsne_gd(embed.make_objective(p, "tsne"), x, 0)
    with pytest.raises(ValueError, match="b_matrix"):
        embed.spectral_direction(embed.make_objective(p, "tsne"), x, np.eye(3), 5)
    with pytest.raises(ValueError, match="idx and val"):
        embed.blocked_value_grad_pressure(x, np.zeros((10, 3), np.int32), np.zeros((10, 2)), "tsne")
    with pytest.raises(ValueError, match="mask"):
        embed.pressured_points(embed.make_objective(p, "tsne"), x, np.ones(3), np.ones(3), [0.0], 5)
    with pytest.raises(ValueError, match="scalar wneg"):
        embed.dense_value_grad_pressure(x, p, "ee", wneg=np.ones((10, 10)))
