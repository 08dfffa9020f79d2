"""Tests for jaxpapers.resnet against NumPy loops, finite differences and jaxpapers.ensemble."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import ensemble, resnet

KEY = jax.random.PRNGKey(0)


def rand(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def naive_conv(x, w, stride):
    """Cross-correlation with zero padding k // 2 on both sides, explicit loops."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    B, H, W, _ = x.shape
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    out = np.zeros((B, Ho, Wo, w.shape[3]))
    for b, i, j, o in itertools.product(range(B), range(Ho), range(Wo), range(w.shape[3])):
        out[b, i, j, o] = np.sum(xp[b, i * stride:i * stride + k, j * stride:j * stride + k, :] * w[..., o])
    return out


@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (1, 2), (1, 1)])
def test_conv2d_matches_loops(k, stride):
    x, w = rand(0, 2, 6, 6, 3), rand(1, k, k, 3, 4)
    got = resnet.conv2d(x, w, stride)
    ref = naive_conv(x, w, stride)
    assert got.shape == ref.shape == (2, 6 // stride, 6 // stride, 4)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_batch_norm_matches_numpy():
    x, gamma, beta = rand(0, 3, 4, 5, 6), rand(1, 6), rand(2, 6)
    got, st = resnet.batch_norm(x, gamma, beta)
    xn = np.asarray(x, np.float64).reshape(-1, 6)
    ref = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5) * np.asarray(gamma) + np.asarray(beta)
    np.testing.assert_allclose(np.asarray(got).reshape(-1, 6), ref, atol=1e-4)
    np.testing.assert_allclose(st["mean"], xn.mean(0), atol=1e-5)
    np.testing.assert_allclose(st["var"], xn.var(0), atol=1e-4)
    fixed = {"mean": jnp.full(6, 0.5), "var": jnp.full(6, 4.0)}
    y, st2 = resnet.batch_norm(x, gamma, beta, fixed)
    np.testing.assert_allclose(y, (x - 0.5) / np.sqrt(4.0 + 1e-5) * gamma + beta, atol=1e-5)
    assert st2 is fixed


def test_resnet20_shapes_and_size():
    params = jax.jit(resnet.init)(KEY)
    assert len(params["blocks"]) == 9
    assert [("wp" in b) for b in params["blocks"]] == [False] * 3 + [True, False, False] * 2
    assert params["head"]["w"].shape == (64, 10)
    assert 260_000 < resnet.num_params(params) < 290_000  # ResNet-20: about 0.27 M
    x = jax.random.uniform(KEY, (5, 32, 32, 3))
    logits = jax.jit(resnet.apply)(params, x)
    assert logits.shape == (5, 10) and logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    p100 = jax.eval_shape(lambda k: resnet.init(k, width=8, blocks=1, stages=4, num_classes=100), KEY)
    assert jax.eval_shape(resnet.apply, p100, x).shape == (5, 100) and p100["head"]["w"].shape == (64, 100)


def test_blocks_start_as_identity():
    params = jax.jit(lambda k: resnet.init(k, width=8, blocks=2, stages=1))(KEY)
    x = jax.random.uniform(KEY, (4, 8, 8, 3))
    stem_only = dict(params, blocks=[])  # the zero-initialised last BN scale makes every block the identity
    np.testing.assert_allclose(resnet.apply(params, x), resnet.apply(stem_only, x), atol=1e-5)


def test_frozen_stats_are_population_stats_and_make_images_independent():
    params = jax.jit(lambda k: resnet.init(k, width=4, blocks=1, stages=2))(KEY)
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * rand(int(a.size), *a.shape), params)  # non-trivial BN scales
    x = jax.random.uniform(jax.random.PRNGKey(3), (40, 8, 8, 3))
    # one batch of everything: the population statistics are that batch's statistics
    full = resnet.population_stats(params, x, batch_size=40)
    _, used = resnet._forward(params, x, None)
    assert len(full) == len(used) == 1 + 2 + 3  # stem; block 1: n1, n2; block 2: n1, n2, projection
    for a, b in zip(full, used):
        np.testing.assert_allclose(a["mean"], b["mean"], atol=1e-5)
        np.testing.assert_allclose(a["var"], b["var"], atol=1e-5)
    # four batches of 10: the stem layer's moments pool exactly (its input does not depend on other BNs)
    four = resnet.population_stats(params, x, batch_size=10)
    np.testing.assert_allclose(four[0]["mean"], full[0]["mean"], atol=1e-5)
    np.testing.assert_allclose(four[0]["var"], full[0]["var"], atol=1e-5)
    frozen = resnet.freeze_stats(params, x, batch_size=10)
    assert "stats" not in params and len(frozen["stats"]) == 6
    # with frozen statistics an image's logits do not depend on the rest of its batch ...
    apply = jax.jit(resnet.apply)
    np.testing.assert_allclose(apply(frozen, x[:3]), apply(frozen, x)[:3], atol=1e-5)
    # ... in training mode they do
    assert not np.allclose(apply(params, x[:3]), apply(params, x)[:3], atol=1e-3)
    # members=True: every member of a stacked ensemble gets its own statistics
    other = jax.tree_util.tree_map(lambda a: a + 0.1, params)
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), params, other)
    both = resnet.freeze_stats(stacked, x, batch_size=10, members=True)
    for s, single in enumerate((frozen, resnet.freeze_stats(other, x, batch_size=10))):
        for layer in (0, 3, 5):
            np.testing.assert_allclose(both["stats"][layer]["var"][s], single["stats"][layer]["var"],
                                       rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="at least"):
        resnet.population_stats(params, x, batch_size=50)


def test_gradient_matches_finite_differences():
    """Directional derivatives of the loss in float64 (float32 differences are too coarse) at random points."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        params = resnet.init(KEY, width=4, blocks=1, stages=2, num_classes=3)
        # move away from the initialisation so that every path is active (g2 starts at zero); training-mode BN
        perturb = lambda a: jnp.asarray(np.asarray(a, np.float64) + 0.3 * rng.normal(size=a.shape))
        params = jax.tree_util.tree_map(perturb, params)
        x, y = jnp.asarray(rng.random((4, 8, 8, 3))), jnp.array([0, 1, 2, 1])
        loss = jax.jit(lambda p: optax.softmax_cross_entropy_with_integer_labels(resnet.apply(p, x), y).mean())
        assert loss(params).dtype == jnp.float64
        g = jax.jit(jax.grad(loss))(params)
        leaves, tree = jax.tree_util.tree_flatten(params)
        for _ in range(3):
            v = [jnp.asarray(rng.normal(size=a.shape)) for a in leaves]
            shift = lambda e: jax.tree_util.tree_unflatten(tree, [a + e * d for a, d in zip(leaves, v)])
            eps = 1e-7  # small, so that no ReLU kink lies within +-eps (float64 keeps the rounding error ~1e-9)
            fd = (float(loss(shift(eps))) - float(loss(shift(-eps)))) / (2 * eps)
            an = float(sum(jnp.vdot(gl, d) for gl, d in zip(jax.tree_util.tree_leaves(g), v)))
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), (fd, an)


def test_vmap_over_seeds_equals_single_models():
    keys = jax.random.split(KEY, 3)
    init = jax.jit(lambda k: resnet.init(k, width=4, blocks=1))
    stacked = jax.vmap(init)(keys)
    x = jax.random.uniform(KEY, (2, 16, 16, 3))
    got = jax.jit(jax.vmap(resnet.apply, in_axes=(0, None)))(stacked, x)
    apply = jax.jit(resnet.apply)
    for s in range(3):
        np.testing.assert_allclose(got[s], apply(init(keys[s]), x), atol=1e-5)
    assert not np.allclose(got[0], got[1])  # seeds differ


def naive_crop_flip_candidates(x, pad):
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    H, W = x.shape[:2]
    for dy, dx in itertools.product(range(2 * pad + 1), repeat=2):
        crop = xp[dy:dy + H, dx:dx + W]
        yield (dy, dx, False), crop
        yield (dy, dx, True), crop[:, ::-1]


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    x = np.random.default_rng(0).random((64, 6, 6, 2)).astype(np.float32)
    out = np.asarray(resnet.random_crop_flip(KEY, jnp.asarray(x), pad=2))
    assert out.shape == x.shape
    found = []
    for b in range(len(x)):
        match = [c for c, img in naive_crop_flip_candidates(x[b], 2) if np.array_equal(img, out[b])]
        assert len(match) == 1, b
        found.append(match[0])
    assert {f[2] for f in found} == {False, True}       # both flips occur
    assert len({f[:2] for f in found}) > 10              # many offsets occur
    np.testing.assert_array_equal(resnet.random_crop_flip(KEY, jnp.asarray(x), pad=2), out)  # same key, same batch


def test_random_crop_flip_pad_zero_only_flips():
    x = np.random.default_rng(1).random((16, 5, 5, 1)).astype(np.float32)
    out = np.asarray(resnet.random_crop_flip(KEY, jnp.asarray(x), pad=0))
    for b in range(16):
        assert np.array_equal(out[b], x[b]) or np.array_equal(out[b], x[b, :, ::-1])


def test_bad_inputs():
    params = resnet.init(KEY, width=4, blocks=1)
    with pytest.raises(ValueError, match="NHWC"):
        resnet.apply(params, jnp.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="NHWC"):
        resnet.apply(params, jnp.zeros((2, 3, 32, 32)))
    with pytest.raises(ValueError, match="width"):
        resnet.init(KEY, width=0)
    with pytest.raises(ValueError, match="blocks"):
        resnet.init(KEY, blocks=1.5)
    with pytest.raises(ValueError, match="stride"):
        resnet.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2)), 0)
    with pytest.raises(ValueError, match="C_in"):
        resnet.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="gamma"):
        resnet.batch_norm(jnp.zeros((1, 2, 2, 4)), jnp.ones(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        resnet.freeze_stats(params, jnp.zeros((4, 8, 8, 3)), batch_size=0)
    with pytest.raises(ValueError, match="pad"):
        resnet.random_crop_flip(KEY, jnp.zeros((1, 4, 4, 1)), pad=-1)


def test_resnet_ensemble_trains_a_few_steps_on_random_data():
    """The full-mode path of the underspecification chapter at toy size: batch_loss + data= + augmentation."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 3)).astype(np.float32)
    y = (x[:, :, :, 0].mean((1, 2)) > x[:, :, :, 2].mean((1, 2))).astype(np.int32)  # learnable: red vs blue
    init_fn = lambda k: resnet.init(k, width=4, blocks=1, stages=2, num_classes=2)
    loss_fn = ensemble.batch_loss(resnet.apply, 16, augment=resnet.random_crop_flip)
    tx = optax.sgd(0.05, momentum=0.9)
    ki, kd = ensemble.seed_keys(KEY, 2)
    p_seq, h_seq = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 6, vmapped=False, chunks=2, data=(x, y))
    p_vm, h_vm = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 6, data=(x, y))
    assert h_seq["loss"].shape == (2, 6) and np.all(np.isfinite(h_seq["loss"]))
    np.testing.assert_allclose(h_seq["loss"], h_vm["loss"], rtol=1e-4, atol=1e-5)
    assert p_seq["head"]["w"].shape == (2, 8, 2)
    np.testing.assert_allclose(p_seq["head"]["w"], p_vm["head"]["w"], rtol=1e-3, atol=1e-5)
    frozen = resnet.freeze_stats(p_seq, x, batch_size=32, members=True)
    correct = ensemble.evaluate(resnet.apply, frozen, {"iid": (x, y)}, batch_size=20)
    assert correct["iid"].shape == (2, 64)
    np.testing.assert_array_equal(correct["iid"], ensemble.evaluate(resnet.apply, frozen, {"iid": (x, y)})["iid"])
