import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from jaxpapers import stats


def test_rankdata_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 6, 30).astype(float)  # many ties
        b = a + rng.normal(0, 2, 30)
        np.testing.assert_allclose(stats.rankdata(a), sps.rankdata(a))
        np.testing.assert_allclose(stats.spearman(a, b), sps.spearmanr(a, b).statistic, atol=1e-12)
    assert stats.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matrix_naive_loop():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(4, 20))
    m = stats.spearman_matrix(v)
    assert m.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            np.testing.assert_allclose(m[i, j], sps.spearmanr(v[i], v[j]).statistic, atol=1e-12)


def test_paired_bootstrap_matches_naive_loop():
    rng = np.random.default_rng(2)
    c = (rng.uniform(size=(3, 50)) < np.array([[0.9], [0.7], [0.5]])).astype(np.float32)
    key = jax.random.PRNGKey(0)
    diff, lo, hi = stats.paired_bootstrap_matrix(c, key, n_boot=200, level=0.9)
    idx = np.asarray(stats.bootstrap_indices(key, 200, 50))
    for a in range(3):
        for b in range(3):
            d = np.array([c[a, i].mean() - c[b, i].mean() for i in idx])
            np.testing.assert_allclose(diff[a, b], c[a].mean() - c[b].mean(), atol=1e-6)
            np.testing.assert_allclose([lo[a, b], hi[a, b]], np.quantile(d, [0.05, 0.95]), atol=1e-5)
    assert np.allclose(np.diag(lo), 0) and np.allclose(np.diag(hi), 0)
    d1 = stats.paired_bootstrap(c[0], c[2], key, n_boot=200, level=0.9)
    assert d1[1] > 0  # 0.9 vs 0.5 accuracy on 50 items: clearly different


def test_numpy_rng_is_deterministic_per_key():
    a = stats.numpy_rng(jax.random.PRNGKey(0)).random(5)
    b = stats.numpy_rng(jax.random.PRNGKey(0)).random(5)
    c = stats.numpy_rng(jax.random.PRNGKey(1)).random(5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    idx = stats.bootstrap_indices(jax.random.PRNGKey(0), 3, 7)
    assert idx.shape == (3, 7) and idx.min() >= 0 and idx.max() < 7


def test_significant_fraction_and_null_calibration():
    # identical-accuracy models with independent errors: few pairs significant
    rng = np.random.default_rng(3)
    c = (rng.uniform(size=(12, 400)) < 0.8).astype(np.float32)
    _, lo, hi = stats.paired_bootstrap_matrix(c, jax.random.PRNGKey(1), n_boot=500)
    assert stats.significant_fraction(lo, hi) < 0.2
    lo2 = np.array([[0, 0.1], [-0.3, 0]]); hi2 = np.array([[0, 0.3], [-0.1, 0]])
    assert stats.significant_fraction(lo2, hi2) == 1.0


def test_permutation_null():
    rng = np.random.default_rng(6)
    # exchangeable seeds: observed spread inside the null; systematic seed effect: far outside
    q = rng.uniform(0.3, 1.0, 300)
    exch = (rng.uniform(size=(15, 300)) < q).astype(np.float32)
    null = stats.permutation_null_std(exch, jax.random.PRNGKey(0), n_perm=300)
    assert null.shape == (300,)
    assert 0.6 < exch.mean(1).std(ddof=1) / null.mean() < 1.5
    skill = np.linspace(-0.25, 0.25, 15)[:, None]
    syst = (rng.uniform(size=(15, 300)) < np.clip(q + skill, 0, 1)).astype(np.float32)
    null2 = stats.permutation_null_std(syst, jax.random.PRNGKey(0), n_perm=300)
    assert syst.mean(1).std(ddof=1) > 3 * null2.mean()
    # a naive reference for one permutation: per-item column shuffle keeps item means
    c = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float32)
    sd = stats.permutation_null_std(c, jax.random.PRNGKey(3), n_perm=1)
    order = np.argsort(stats.numpy_rng(jax.random.PRNGKey(3)).random((1,) + c.shape)[0], axis=0)
    np.testing.assert_allclose(sd[0], np.take_along_axis(c, order, 0).mean(1).std(ddof=1), atol=1e-6)


def test_poisson_nll_matches_log_pmf():
    rng = np.random.default_rng(4)
    y = rng.poisson(50.0, 20).astype(np.float32)
    y[0] = 0
    lam = np.full(20, 47.0, np.float32)
    ref = -sps.poisson.logpmf(y, lam).sum() + sps.poisson.logpmf(y, np.maximum(y, 1e-300)).sum()
    np.testing.assert_allclose(float(stats.poisson_nll(lam, y)), ref, rtol=1e-4)
    assert float(stats.poisson_nll(y + (y == 0), y + (y == 0))) == pytest.approx(0.0, abs=1e-5)
    w = (np.arange(20) < 10).astype(np.float32)
    np.testing.assert_allclose(float(stats.poisson_nll(lam, y, w)), float(stats.poisson_nll(lam[:10], y[:10])), rtol=1e-6)


def test_fisher_and_fit_poisson_linear_model():
    # log-linear Poisson regression: MLE satisfies X^T (y - lam) = 0
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 40).astype(np.float32)
    X = np.stack([np.ones_like(t), t], 1)
    y = rng.poisson(np.exp(X @ np.array([3.0, 1.5]))).astype(np.float32)
    mean_fn = lambda th: jnp.exp(jnp.asarray(X) @ th)
    th, hist = stats.fit_poisson(mean_fn, jnp.zeros(2), y, steps=60)
    lam = np.exp(X @ np.asarray(th))
    np.testing.assert_allclose(X.T @ (y - lam), 0, atol=0.05)
    assert hist.shape == (60,) and np.all(np.diff(np.asarray(hist)) <= 1e-4)
    F = stats.poisson_fisher(jax.jacfwd(mean_fn)(th), mean_fn(th))
    np.testing.assert_allclose(np.asarray(F), X.T @ (X * lam[:, None]), rtol=1e-4)
    # a fixed parameter (equal bounds) and a strong prior both pin the slope
    th_fix, _ = stats.fit_poisson(mean_fn, jnp.zeros(2), y, steps=60, lower=[-9, 1.0], upper=[9, 1.0])
    assert float(th_fix[1]) == pytest.approx(1.0)
    th_map, _ = stats.fit_poisson(mean_fn, jnp.zeros(2), y, steps=60, prior_mean=[0, 0.5], prior_precision=[0, 1e6])
    assert float(th_map[1]) == pytest.approx(0.5, abs=1e-2)
    # vmap over starting points
    ths, _ = jax.vmap(lambda s: stats.fit_poisson(mean_fn, s, y, steps=60))(jnp.array([[0.0, 0.0], [4.0, -1.0]]))
    np.testing.assert_allclose(np.asarray(ths[0]), np.asarray(ths[1]), atol=1e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.spearman([1, 2], [1, 2, 3]), "equal length"),
        (lambda: stats.spearman([1], [1]), "at least 2"),
        (lambda: stats.spearman_matrix(np.ones(3)), "shape"),
        (lambda: stats.paired_bootstrap_matrix(np.ones(5), jax.random.PRNGKey(0)), "correct"),
        (lambda: stats.paired_bootstrap_matrix(np.ones((2, 5)), jax.random.PRNGKey(0), level=1.5), "level"),
        (lambda: stats.bootstrap_indices(jax.random.PRNGKey(0), 0, 5), "n_boot"),
        (lambda: stats.poisson_fisher(np.ones((3, 2)), np.ones(2)), "jac"),
        (lambda: stats.fit_poisson(lambda t: t, jnp.zeros((2, 2)), np.ones(2)), "theta0"),
        (lambda: stats.fit_poisson(lambda t: t, jnp.ones(2), np.ones(2), lower=[0.0]), "lower"),
        (lambda: stats.fit_poisson(lambda t: t, jnp.ones(2), np.ones(2), steps=0), "steps"),
        (lambda: stats.significant_fraction(np.zeros((2, 3)), np.zeros((2, 3))), "square"),
        (lambda: stats.permutation_null_std(np.ones((1, 3)), jax.random.PRNGKey(0)), "models >= 2"),
        (lambda: stats.permutation_null_std(np.ones((2, 3)), jax.random.PRNGKey(0), n_perm=0), "n_perm"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_match_total_exact_for_proportional_mean():
    base = jnp.array([1.0, 2.0, 3.0])
    x = stats.match_total(lambda v: jnp.exp(v) * base, 60.0, 0.0, steps=1)
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(x) * base)), 60.0, rtol=1e-5)
    # bounds are respected
    x = stats.match_total(lambda v: jnp.exp(v) * base, 60.0, 0.0, upper=1.0)
    assert float(x) == pytest.approx(1.0)


def test_profile_poisson_1d_matches_closed_form_and_vmaps():
    # mean a * exp(x) * shape: the MLE of x is log(sum y / sum(a shape)), reached by the moment match
    rng = np.random.default_rng(3)
    shape = jnp.asarray(np.linspace(1, 3, 20), jnp.float32)
    y = jnp.asarray(rng.poisson(5 * np.asarray(shape)), jnp.float32)
    w = jnp.asarray(np.arange(20) < 15, jnp.float32)

    def prof(a):
        return stats.profile_poisson_1d(lambda x: a * jnp.exp(x) * shape, y, 0.0, weights=w, steps=3)

    nll, x, last = jax.vmap(prof)(jnp.array([0.5, 2.0]))
    expect = np.log(float(jnp.sum(w * y)) / (np.array([0.5, 2.0]) * float(jnp.sum(w * shape))))
    np.testing.assert_allclose(np.asarray(x), expect, atol=1e-5)
    np.testing.assert_allclose(nll[0], nll[1], rtol=1e-5)  # the profiled NLL does not depend on a
    assert float(jnp.max(last)) < 1e-5
    # nonlinear mean: Fisher scoring converges to the score root
    f = lambda x: jnp.exp(x) * shape + jnp.exp(2 * x) * 0.1
    nll, x, last = stats.profile_poisson_1d(f, y, 0.0, steps=8)
    g = jax.grad(lambda v: stats.poisson_nll(f(v), y))(x)
    assert abs(float(g)) < 1e-2 and float(last) < 1e-4


def test_matched_iid_subset_hits_target():
    rng = np.random.default_rng(4)
    q = np.concatenate([rng.uniform(0.2, 0.95, 60), np.ones(400)])
    c = (rng.uniform(size=(30, q.size)) < q).astype(float)
    c[:, 60:] = 1.0
    for target in (0.93, 0.85):
        sub = stats.matched_iid_subset(c, target)
        assert abs(c[:, sub].mean() - target) < 0.01
        assert len(np.unique(sub)) == len(sub)
    sub = stats.matched_iid_subset(c, 0.3)  # harder than all missed items: the hardest ones
    assert len(sub) >= 2 and c[:, sub].mean() < 0.5
    with pytest.raises(ValueError, match="target"):
        stats.matched_iid_subset(c, 0.0)


def test_rank_reliability_corrects_attenuation():
    rng = np.random.default_rng(5)
    S, n = 40, 400
    skill, other = rng.normal(size=S), rng.normal(size=S)
    make = lambda s: (rng.uniform(size=(S, n)) < np.clip(0.7 + 0.06 * s, 0, 1)[:, None]).astype(float)
    sets = [make(skill), make(skill), make(other), make(np.zeros(S))]
    out = stats.rank_reliability(sets, jax.random.PRNGKey(0), n_splits=10, n_boot=50)
    assert out["rho"].shape == (4, 4) and out["corrected_boot"].shape == (50, 4, 4) and out["rel_boot"].shape == (50, 4)
    assert np.all(out["rel"][:3] > 0.7) and out["rel"][3] < 0.4           # no real differences: unreliable
    assert out["rho"][0, 1] < out["corrected"][0, 1]                     # the correction raises agreement
    assert abs(out["corrected"][0, 1] - 1) < 0.1 and abs(out["corrected"][0, 2]) < 0.4
    np.testing.assert_allclose(np.diag(out["corrected"]), 1.0)
    # the observed rho is the Spearman correlation of the accuracies
    np.testing.assert_allclose(out["rho"][0, 2], stats.spearman(sets[0].mean(1), sets[2].mean(1)), atol=1e-12)
    with pytest.raises(ValueError, match="same models"):
        stats.rank_reliability([sets[0], sets[1][:10]], jax.random.PRNGKey(0))
