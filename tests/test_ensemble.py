import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import attention, ensemble, stats, train

KEY = jax.random.PRNGKey(0)


def toy_data(n=120, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, classes))
    return x, np.argmax(x @ w, 1).astype(np.int32)


def init_fn(key):
    return attention.init_mlp(key, [5, 8, 3])


def apply_fn(params, x):
    return attention.mlp(params, x, activation=jax.nn.relu)


def test_seed_keys_streams():
    ki, kd = ensemble.seed_keys(KEY, 4)
    assert ki.shape == kd.shape == (4, 2)
    assert len({tuple(np.asarray(k)) for k in ki}) == 4 and len({tuple(np.asarray(k)) for k in kd}) == 4
    assert not np.array_equal(np.asarray(ki), np.asarray(kd))
    ki2, kd2 = ensemble.seed_keys(KEY, 4, vary=("data",))
    assert len({tuple(np.asarray(k)) for k in ki2}) == 1 and len({tuple(np.asarray(k)) for k in kd2}) == 4
    np.testing.assert_array_equal(np.asarray(kd2), np.asarray(kd))  # data stream unchanged


def test_vmapped_ensemble_equals_sequential_single_runs():
    x, y = toy_data()
    loss_fn = ensemble.minibatch_loss(apply_fn, x, y, 16)
    tx = optax.adam(1e-2)
    ki, kd = ensemble.seed_keys(KEY, 3)
    params, hist = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 40)
    assert hist["loss"].shape == (3, 40) and hist["accuracy"].shape == (3, 40)
    assert params[0]["w"].shape == (3, 5, 8)
    # naive reference: one train.fit per member with the same keys
    for s in range(3):
        p, h = train.fit(loss_fn, init_fn(ki[s]), tx, kd[s], 40)
        np.testing.assert_allclose(np.asarray(params[0]["w"][s]), np.asarray(p[0]["w"]), atol=1e-5)
        np.testing.assert_allclose(hist["loss"][s], h["loss"], atol=1e-5)
    seq, hs = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 40, vmapped=False, chunks=2)
    np.testing.assert_allclose(np.asarray(seq[1]["b"]), np.asarray(params[1]["b"]), atol=1e-5)
    np.testing.assert_allclose(hs["loss"], hist["loss"], atol=1e-5)
    # training lowers the loss
    assert hist["loss"][:, -10:].mean() < hist["loss"][:, :5].mean()
    # an unrolled loop (a short CPU run of a convolutional network) takes the same steps
    unrolled, hu = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 8, chunks=2, unroll=True)
    looped, hl = ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 8, chunks=2)
    np.testing.assert_allclose(np.asarray(unrolled[0]["w"]), np.asarray(looped[0]["w"]), atol=1e-6)
    np.testing.assert_allclose(hu["loss"], hl["loss"], atol=1e-6)
    with pytest.raises(ValueError, match="unroll"):
        ensemble.train_ensemble(init_fn, loss_fn, tx, ki, kd, 8, unroll=0)


def test_minibatch_loss_uses_distinct_examples():
    x, y = toy_data(n=10)
    seen = []
    fake_apply = lambda p, xb: (seen.append(xb), jnp.zeros((xb.shape[0], 3)))[1]
    loss, m = ensemble.minibatch_loss(fake_apply, x, y, 10)(None, KEY)
    xb = np.asarray(seen[0])
    assert len({tuple(r) for r in xb}) == 10  # a permutation of all 10 rows
    np.testing.assert_allclose(float(loss), np.log(3.0), rtol=1e-6)


def test_evaluate_summary_rank_matrix():
    x, y = toy_data()
    loss_fn = ensemble.minibatch_loss(apply_fn, x, y, 16)
    ki, kd = ensemble.seed_keys(KEY, 4)
    params, _ = ensemble.train_ensemble(init_fn, loss_fn, optax.adam(1e-2), ki, kd, 30)
    tests = {"iid": (x, y), "shifted": (x + 1.0, y), "half": (x[:50], y[:50])}
    correct = ensemble.evaluate(apply_fn, params, tests)
    assert correct["iid"].shape == (4, 120) and correct["half"].shape == (4, 50) and correct["iid"].dtype == bool
    ref = np.stack([np.argmax(np.asarray(apply_fn(jax.tree_util.tree_map(lambda a: a[s], params), x)), 1) == y
                    for s in range(4)])
    np.testing.assert_array_equal(correct["iid"], ref)
    batched = ensemble.evaluate(apply_fn, params, tests, batch_size=7)
    np.testing.assert_array_equal(batched["shifted"], correct["shifted"])
    acc = ensemble.accuracies(correct)
    np.testing.assert_allclose(acc["iid"], 100 * ref.mean(1))
    rows = ensemble.summary(acc)
    assert [r["name"] for r in rows] == list(tests)
    np.testing.assert_allclose(rows[0]["std"], np.std(acc["iid"], ddof=1))
    np.testing.assert_allclose(rows[1]["range"], np.ptp(acc["shifted"]))
    assert "shifted" in ensemble.format_summary(rows)
    names, R = ensemble.rank_matrix(acc, names=["iid", "shifted"])
    assert names == ["iid", "shifted"] and R.shape == (2, 2)
    np.testing.assert_allclose(R[0, 1], stats.spearman(acc["iid"], acc["shifted"]))


def test_data_argument_equals_captured_data():
    """batch_loss with data= (a jit argument) trains exactly like minibatch_loss (data in a closure)."""
    x, y = toy_data()
    tx = optax.adam(1e-2)
    ki, kd = ensemble.seed_keys(KEY, 3)
    ref_p, ref_h = ensemble.train_ensemble(init_fn, ensemble.minibatch_loss(apply_fn, x, y, 16), tx, ki, kd, 20)
    arg_loss = ensemble.batch_loss(apply_fn, 16)
    for vmapped in (True, False):
        p, h = ensemble.train_ensemble(init_fn, arg_loss, tx, ki, kd, 20, vmapped=vmapped, chunks=2, data=(x, y))
        np.testing.assert_allclose(h["loss"], ref_h["loss"], atol=1e-5)
        np.testing.assert_allclose(h["accuracy"], ref_h["accuracy"], atol=1e-6)
        np.testing.assert_allclose(np.asarray(p[0]["w"]), np.asarray(ref_p[0]["w"]), atol=1e-5)


def test_batch_loss_augments_with_its_own_key():
    x, y = toy_data(n=10)
    seen = []

    def fake_apply(p, xb):
        seen.append(np.asarray(xb))
        return jnp.zeros((xb.shape[0], 3))

    aug_keys = []
    augment = lambda k, xb: (aug_keys.append(np.asarray(k)), xb + 100.0)[1]
    ensemble.batch_loss(fake_apply, 10, augment=augment)(None, KEY, (jnp.asarray(x), jnp.asarray(y)))
    assert seen[-1].min() > 50 and len({tuple(r) for r in seen[-1]}) == 10
    k_idx, k_aug = jax.random.split(KEY)
    np.testing.assert_array_equal(aug_keys[0], np.asarray(k_aug))
    loss_fn = ensemble.batch_loss(fake_apply, 20)
    with pytest.raises(ValueError, match="exceeds"):
        loss_fn(None, KEY, (jnp.asarray(x), jnp.asarray(y)))
    with pytest.raises(ValueError, match="same first axis"):
        loss_fn(None, KEY, (jnp.asarray(x), jnp.asarray(y[:5])))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ensemble.seed_keys(KEY, 0), "n_seeds"),
        (lambda: ensemble.seed_keys(KEY, 2, vary=("dropout",)), "vary"),
        (lambda: ensemble.minibatch_loss(apply_fn, np.ones((4, 5)), np.ones(3, int), 2), "same first axis"),
        (lambda: ensemble.minibatch_loss(apply_fn, np.ones((4, 5)), np.ones(4, int), 5), "batch_size"),
        (lambda: ensemble.train_ensemble(init_fn, None, optax.sgd(1), np.zeros((2, 2), np.uint32),
                                         np.zeros((3, 2), np.uint32), 5), "init_keys"),
        (lambda: ensemble.train_ensemble(init_fn, None, optax.sgd(1), *ensemble.seed_keys(KEY, 2), 5, chunks=2), "chunks"),
        (lambda: ensemble.batch_loss(apply_fn, 0), "batch_size"),
        (lambda: ensemble.batch_loss(apply_fn, 4, augment="flip"), "augment"),
        (lambda: ensemble.evaluate(apply_fn, None, {}), "at least one"),
        (lambda: ensemble.summary({"a": np.ones(1)}), ">= 2"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_random_feature_risks_min_norm_and_seed_dependence():
    key = jax.random.PRNGKey(0)
    kx, kt, kw = jax.random.split(key, 3)
    x = jax.random.normal(kx, (30, 5))
    y = x[:, 0]
    xt = jax.random.normal(kt, (100, 5))
    keys = jax.random.split(kw, 3)
    out = ensemble.random_feature_risks(keys, x, y, {"iid": (xt, xt[:, 0]), "train_again": (x, y)}, p=80)
    assert set(out) == {"iid", "train_again", "train"} and out["iid"].shape == (3,)
    assert out["train"].max() < 1e-4 and out["train_again"].max() < 1e-4   # interpolation
    assert np.ptp(out["iid"]) > 0                                             # the seed (W) matters
    # member 0 equals a direct computation with the same W
    W = jax.random.normal(keys[0], (5, 80))
    phi = ensemble.relu_features(W, x)
    theta = ensemble.min_norm_fit(phi, y)
    np.testing.assert_allclose(theta, jnp.linalg.pinv(phi) @ y, atol=1e-3)
    ref = float(jnp.mean((ensemble.relu_features(W, xt) @ theta - xt[:, 0]) ** 2))
    np.testing.assert_allclose(out["iid"][0], ref, rtol=1e-3)
    with pytest.raises(ValueError, match="test set"):
        ensemble.random_feature_risks(keys, x, y, {"bad": (xt[:, :3], xt[:, 0])}, p=80)
