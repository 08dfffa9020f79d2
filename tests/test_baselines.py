import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import baselines


def _problem(seed=0, T=5):
    key = jax.random.PRNGKey(seed)
    kx, kw, kp = jax.random.split(key, 3)
    xs = jax.random.normal(kx, (T, 16, 3))
    ys = xs @ jax.random.normal(kw, (3, 2))
    params = baselines.init_mlp(kp, (3, 4, 2))
    loss = lambda p, x, y: jnp.mean((baselines.mlp(p, x) - y) ** 2)
    return params, xs, ys, loss


def test_init_mlp_shapes_and_validation():
    p = baselines.init_mlp(jax.random.PRNGKey(0), (5, 7, 3))
    assert [(W.shape, b.shape) for W, b in p] == [((5, 7), (7,)), ((7, 3), (3,))]
    with pytest.raises(ValueError, match="sizes"):
        baselines.init_mlp(jax.random.PRNGKey(0), (5,))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_curve_matches_optax(momentum):
    params, xs, ys, loss = _problem()
    score = lambda p: -loss(p, xs[0], ys[0])
    final, scores = baselines.sgd_curve(loss, score, params, xs, ys, 0.1, momentum)
    tx = optax.sgd(0.1, momentum=momentum if momentum else None)
    p, s, ref = params, tx.init(params), []
    for t in range(xs.shape[0]):
        u, s = tx.update(jax.grad(loss)(p, xs[t], ys[t]), s, p)
        p = optax.apply_updates(p, u)
        ref.append(score(p))
    np.testing.assert_allclose(np.asarray(scores), np.asarray(ref), rtol=1e-5, atol=1e-6)
    for (a, b), (c, d) in zip(final, p):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_sgd_curve_zero_lr_keeps_params():
    params, xs, ys, loss = _problem()
    final, scores = baselines.sgd_curve(loss, lambda p: loss(p, xs[0], ys[0]), params, xs, ys, 0.0, 0.9)
    assert np.allclose(np.asarray(scores), float(loss(params, xs[0], ys[0])))
    with pytest.raises(ValueError, match="leading"):
        baselines.sgd_curve(loss, lambda p: 0.0, params, xs, ys[:2], 0.1)


def test_grid_curves_shape_and_values():
    params, xs, ys, loss = _problem()

    def curve(lr, m, key):
        return baselines.sgd_curve(loss, lambda p: -loss(p, xs[0], ys[0]), params, xs, ys, lr, m)[1]

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    out = jax.jit(lambda k: baselines.grid_curves(curve, k, lrs=(0.0, 0.1), momenta=(0.0, 0.9)))(keys)
    assert out.shape == (2, 2, 3, xs.shape[0])
    np.testing.assert_allclose(out[1, 1, 0], curve(0.1, 0.9, keys[0]), rtol=1e-5)
    assert np.allclose(out[:, 0], float(-loss(params, xs[0], ys[0])))  # lr 0: nothing moves


def test_tune_selects_on_selection_episodes_only():
    rng = np.random.default_rng(0)
    M, L, T = 2, 4, 3
    sel = rng.uniform(size=(M, L, 5, T))
    sel[1, 2, :, 1] += 10.0  # momentum 1, lr 2 wins at step 1 on the selection episodes
    ev = rng.uniform(size=(M, L, 7, T))
    ev[0, 3] += 100.0  # would win if evaluation were used to select
    tuned = baselines.tune(sel, ev)
    assert tuned.curves.shape == (M, 7, T) and tuned.best.shape == (7, T)
    assert tuned.best_choice[1].tolist() == [1, 2]
    np.testing.assert_allclose(tuned.best[:, 1], ev[1, 2, :, 1])
    for m in range(M):
        for t in range(T):
            i = sel[m, :, :, t].mean(1).argmax()
            assert tuned.lr_index[m, t] == i
            np.testing.assert_allclose(tuned.curves[m, :, t], ev[m, i, :, t])
            assert tuned.at_edge[m, t] == (i in (0, L - 1))


def test_tune_validates_shapes():
    with pytest.raises(ValueError, match="M, L"):
        baselines.tune(np.zeros((1, 2, 3, 4)), np.zeros((1, 3, 3, 4)))
    with pytest.raises(ValueError, match="must be"):
        baselines.tune(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_lr_grid_spans_four_orders():
    assert baselines.LR_GRID[-1] / baselines.LR_GRID[0] >= 1e4 and 0.0 in baselines.MOMENTA
