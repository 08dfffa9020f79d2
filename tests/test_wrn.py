"""Tests for jaxpapers.wrn (growable WRN) against a NumPy forward pass and the GradMax identities."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import growth_conv as gc
from jaxpapers import wrn


def _np_conv(x, w, stride=1):
    """Zero-padded (k // 2) cross-correlation by a loop over kernel offsets (float64)."""
    k, p = w.shape[0], w.shape[0] // 2
    xp = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    ho, wo = (x.shape[1] - 1) // stride + 1, (x.shape[2] - 1) // stride + 1
    out = np.zeros(x.shape[:1] + (ho, wo, w.shape[3]))
    for dy in range(k):
        for dx in range(k):
            out += xp[:, dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride] @ w[dy, dx]
    return out


def _np_bn(x, g, b, stats=None):
    m, v = (x.mean((0, 1, 2)), x.var((0, 1, 2))) if stats is None else stats
    return (x - m) / np.sqrt(v + wrn.BN_EPS) * g + b


def _np_wrn(params, x, stats=None):
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    st = iter(stats) if stats is not None else None
    nxt = lambda: None if st is None else tuple(np.asarray(s, np.float64) for s in next(st))  # noqa: E731
    h = _np_conv(np.asarray(x, np.float64), p["stem"])
    n = len(p["blocks"]) // 3
    for i, blk in enumerate(p["blocks"]):
        stride = 2 if (i % n == 0 and i > 0) else 1
        o = np.maximum(_np_bn(h, blk["bn_g"], blk["bn_b"], nxt()), 0)
        z = _np_conv(np.maximum(_np_conv(o, blk["conv1"], stride), 0), blk["conv2"])
        h = (_np_conv(o, blk["proj"], stride) if "proj" in blk else h) + z
    o = np.maximum(_np_bn(h, p["bn_g"], p["bn_b"], nxt()), 0)
    return o.mean((1, 2)) @ p["head_w"] + p["head_b"]


def _perturbed(params, seed=0):
    """Non-trivial BN affine parameters (init has gamma = 1, beta = 0)."""
    rng = np.random.default_rng(seed)
    f = lambda path, a: a + 0.1 * rng.normal(size=a.shape).astype(np.float32) if "bn_" in str(path[-1]) else a  # noqa: E731
    return jax.tree_util.tree_map_with_path(f, params)


def test_layout_of_wrn_28_1_and_bad_input():
    lay = wrn.wrn_layout(28, 1)
    assert len(lay) == 12
    assert [w for _, w, _ in lay] == [16] * 4 + [32] * 4 + [64] * 4
    assert [s for _, _, s in lay] == [1] * 4 + [2, 1, 1, 1] + [2, 1, 1, 1]
    assert lay[4][0] == 16 and lay[8][0] == 32
    for bad in (27, 4, 28.0, True):
        with pytest.raises(ValueError, match="depth"):
            wrn.wrn_layout(bad)
    with pytest.raises(ValueError, match="widen"):
        wrn.wrn_layout(28, 0)


def test_init_wrn_28_1_shapes_padding_and_output_shape():
    params, active = wrn.init_wrn(jax.random.PRNGKey(0), 28, 1, grow_from=0.25)
    assert list(np.asarray(active)) == [4] * 4 + [8] * 4 + [16] * 4 and active.dtype == jnp.int32
    assert params["stem"].shape == (3, 3, 3, 16) and params["head_w"].shape == (64, 10)
    for (c_in, w, s), blk, a in zip(wrn.wrn_layout(28, 1), params["blocks"], np.asarray(active)):
        assert blk["conv1"].shape == (3, 3, c_in, w) and blk["conv2"].shape == (3, 3, w, w)
        assert ("proj" in blk) == (c_in != w or s != 1)
        assert np.all(np.asarray(blk["conv1"])[..., a:] == 0) and np.all(np.asarray(blk["conv2"])[:, :, a:] == 0)
        assert np.all(np.asarray(blk["conv1"])[..., :a] != 0)
    out = jax.eval_shape(lambda: wrn.wrn_apply(params, jnp.zeros((2, 32, 32, 3))))
    assert out.shape == (2, 10) and out.dtype == jnp.float32
    big, a_big = wrn.init_wrn(jax.random.PRNGKey(0), 28, 1)
    assert list(np.asarray(a_big)) == [16] * 4 + [32] * 4 + [64] * 4
    n_par = sum(v.size for v in jax.tree_util.tree_leaves(big))
    assert 0.3e6 < n_par < 0.45e6  # WRN-28-1 has about 0.37 M parameters


@pytest.mark.parametrize("kwargs, match", [(dict(grow_from=0.3), "grow_from"), (dict(grow_from=0.0), "grow_from"),
                                           (dict(num_classes=0), "num_classes"), (dict(depth=11), "depth")])
def test_init_wrn_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wrn.init_wrn(jax.random.PRNGKey(0), **kwargs)


def test_forward_matches_numpy_with_batch_and_given_stats():
    params, _ = wrn.init_wrn(jax.random.PRNGKey(1), 10, 1, grow_from=0.5)
    params = _perturbed(params)
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(wrn.wrn_apply(params, x)), _np_wrn(params, x), rtol=2e-4, atol=2e-4)
    x2 = np.random.default_rng(1).uniform(size=(4, 8, 8, 3)).astype(np.float32)
    stats = wrn.population_stats(params, jnp.stack([x2[:2], x2[2:]]))
    assert len(stats) == len(params["blocks"]) + 1
    np.testing.assert_allclose(np.asarray(wrn.wrn_apply(params, x, stats)), _np_wrn(params, x, stats),
                               rtol=2e-4, atol=2e-4)
    # one batch: population statistics == that batch's statistics
    one = wrn.population_stats(params, x[None])
    np.testing.assert_allclose(np.asarray(wrn.wrn_apply(params, x, one)), np.asarray(wrn.wrn_apply(params, x)),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="x must"):
        wrn.wrn_apply(params, x[..., :2])
    with pytest.raises(ValueError, match="xs must"):
        wrn.population_stats(params, x)


def test_gradmax_growth_of_every_block_is_exact_and_function_preserving():
    params, active = wrn.init_wrn(jax.random.PRNGKey(2), 10, 1, grow_from=0.25)   # inner widths 4, 8, 16
    params = _perturbed(params)
    x = jax.random.uniform(jax.random.PRNGKey(3), (6, 8, 8, 3))
    y = jnp.arange(6) % 10

    def loss_of_logits(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss = lambda p: loss_of_logits(wrn.wrn_apply(p, x))  # noqa: E731
    ms = wrn.wrn_gradient_matrices(params, x, loss_of_logits)
    ks = [1, 2, 4]
    outs = [gc.conv_growth_directions(m, blk["conv2"], a, k, 0.5)
            for m, blk, a, k in zip(ms, params["blocks"], np.asarray(active), ks)]
    q, a2 = wrn.wrn_grow(params, active, outs)
    assert list(np.asarray(a2)) == [5, 10, 20]
    assert abs(float(loss(q)) - float(loss(params))) <= 1e-6
    g = jax.grad(loss)(q)
    for b, (m, out, a, k) in enumerate(zip(ms, outs, np.asarray(active), ks)):
        gb = np.asarray(g["blocks"][b]["conv1"])
        new = gb[..., a:a + k].reshape(-1, k)
        np.testing.assert_allclose(new, np.asarray(m) @ np.asarray(out).reshape(k, -1).T, rtol=1e-4, atol=1e-7)
        sig = np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)
        c = 0.5 * float(gc.mean_active_kernel_norm(params["blocks"][b]["conv2"], a))
        assert np.linalg.norm(new) == pytest.approx(c * np.sqrt(np.sum(sig[:k] ** 2)), rel=1e-4)
        assert np.all(gb[..., a + k:] == 0)                                  # still-empty slots: zero gradient
        assert np.all(np.asarray(g["blocks"][b]["conv2"])[:, :, a + k:] == 0)
    with pytest.raises(ValueError, match="one out_kernels"):
        wrn.wrn_grow(params, active, outs[:2])
    with pytest.raises(ValueError, match="callable"):
        wrn.wrn_gradient_matrices(params, x, None)


def test_cifar_pipeline_smoke_on_random_tensors():
    """The chapter's full-mode CIFAR path (train, grow by method, evaluate) on a tiny WRN-10 and random images."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (24, 8, 8, 3))
    y = jax.random.randint(jax.random.PRNGKey(1), (24,), 0, 10)
    small, a_small = wrn.init_wrn(jax.random.PRNGKey(2), 10, 1, grow_from=0.5)
    big, a_big = wrn.init_wrn(jax.random.PRNGKey(2), 10, 1)
    ks = tuple(int(k) for k in (a_big - a_small) // 2)
    runs = 5                                              # GradMax, uniform, Gaussian, small, big
    P = jax.tree_util.tree_map(lambda u, v: jnp.stack([u] * 4 + [v]), small, big)
    A = jnp.stack([a_small] * 4 + [a_big])
    tx = optax.sgd(0.01, momentum=0.9, nesterov=True)
    O = jax.vmap(tx.init)(P)
    xb, yb = wrn.augmented_batch(jax.random.PRNGKey(3), 0, x, y, 8)
    assert xb.shape == (8, 8, 8, 3) and yb.shape == (8,)
    P, O, ce = jax.jit(wrn.train_chunk, static_argnums=(6, 7, 8))(P, O, jnp.int32(0), x, y, key, tx, 8, 2)
    assert ce.shape == (2, runs) and np.all(np.isfinite(np.asarray(ce)))
    P2, A2, info = jax.jit(wrn.grow_runs, static_argnums=6)(P, A, jnp.arange(runs, dtype=jnp.int32), xb, yb, key, ks)
    np.testing.assert_array_equal(np.asarray(A2), np.asarray(jnp.stack([a_small + jnp.asarray(ks)] * 3 + [a_small, a_big])))
    assert np.abs(np.asarray(info["dloss"])).max() <= 1e-5            # function-preserving
    slot, pred = np.asarray(info["slot"]), np.asarray(info["pred"])
    np.testing.assert_allclose(slot[0], pred[0, :, 0], rtol=1e-3)      # GradMax: autodiff == eq. (C1)
    assert np.all(pred[:3, :, 0] >= pred[:3, :, 1:].max(-1) * (1 - 1e-5))   # the theorem ||Mw|| <= sigma_1 ||w||
    for r in (3, 4):                                                  # the baselines are left as they were
        assert all(np.array_equal(np.asarray(u[r]), np.asarray(v[r]))
                   for u, v in zip(jax.tree_util.tree_leaves(P2), jax.tree_util.tree_leaves(P)))
    acc = np.asarray(wrn.test_accuracy(P2, x, x, y, 2, 8, 2, 8))
    assert acc.shape == (runs,) and np.all((0 <= acc) & (acc <= 1))
    with pytest.raises(ValueError, match="ks"):
        wrn.grow_runs(P, A, jnp.arange(runs, dtype=jnp.int32), xb, yb, key, ks[:-1])


def test_growth_protocol_runs_the_five_methods_side_by_side():
    """The chapter's CIFAR protocol on a tiny WRN-10 and random images: shapes, widths, preservation."""
    x = jax.random.normal(jax.random.PRNGKey(0), (32, 8, 8, 3))
    y = jax.random.randint(jax.random.PRNGKey(1), (32,), 0, 10)
    out = wrn.growth_protocol(jax.random.PRNGKey(2), x, y, x[:16], y[:16], seeds=2, steps=6, batch_size=8, lr=0.05,
                              warmup=1, first=2, every=2, growths=2, grow_from=0.5, chunk=4, depth=10)
    _, a_small = wrn.init_wrn(jax.random.PRNGKey(0), 10, 1, grow_from=0.5)
    _, a_big = wrn.init_wrn(jax.random.PRNGKey(0), 10, 1)
    assert out["acc_steps"] == [2, 4, 6]
    for s in range(2):
        assert out["curves"][s].shape == (6, 5) and np.all(np.isfinite(out["curves"][s]))
        assert out["acc"][s].shape == (3, 5) and np.all((0 <= out["acc"][s]) & (out["acc"][s] <= 1))
        np.testing.assert_array_equal(out["active"][s], np.stack([a_big] * 3 + [a_small, a_big]))
        assert len(out["grow"][s]) == 2
        for info in out["grow"][s]:
            assert np.abs(info["dloss"]).max() <= 1e-5
            np.testing.assert_allclose(info["slot"][0], info["pred"][0, :, 0], rtol=1e-3)
    assert not np.allclose(out["curves"][0], out["curves"][1])           # the seeds differ
    # the training chunks unrolled (a short CPU run) take the same steps
    unrolled = wrn.growth_protocol(jax.random.PRNGKey(2), x, y, x[:16], y[:16], seeds=1, steps=6, batch_size=8,
                                   lr=0.05, warmup=1, first=2, every=2, growths=2, grow_from=0.5, chunk=4, depth=10,
                                   unroll=True)
    np.testing.assert_allclose(unrolled["curves"][0], out["curves"][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(unrolled["active"][0], out["active"][0])
    for kw, match in ((dict(first=6), "growth"), (dict(batch_size=64), "batch_size"), (dict(growths=0), "growths"),
                      (dict(seeds=0), "seeds"), (dict(unroll=0), "unroll")):
        args = dict(seeds=1, steps=6, batch_size=8, lr=0.05, warmup=1, first=2, every=2, growths=2, grow_from=0.5,
                    chunk=4, depth=10)
        args.update(kw)
        with pytest.raises(ValueError, match=match):
            wrn.growth_protocol(jax.random.PRNGKey(2), x, y, x[:16], y[:16], **args)
