"""Tests for jaxpapers.vit against naive NumPy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import vit

DIM, DEPTH, HEADS = 16, 2, 2


@pytest.fixture(scope="module")
def model():
    key = jax.random.PRNGKey(0)
    p = vit.init_vit(key, image_size=8, patch=4, dim=DIM, depth=DEPTH, heads=HEADS, mlp_ratio=2, num_classes=3)
    p["head"] = vit.init_head(jax.random.PRNGKey(1), DIM, 3, scale=0.3)
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 8, 8))
    return p, x


def make_task(p, seed, m, classes=3, std=0.5):
    t = vit.init_task(jax.random.PRNGKey(seed), p, memory=m, num_classes=classes, memory_std=std)
    t["head"] = vit.init_head(jax.random.PRNGKey(seed + 100), DIM, classes, scale=0.3)
    t["cls"] = t["cls"] + 0.1 * jax.random.normal(jax.random.PRNGKey(seed + 200), (DIM,))
    return t


# ---------- naive NumPy reference ----------------------------------------------------------------
def np_ln(p, x, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def np_gelu(x):  # jax.nn.gelu's default (tanh) approximation
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_block(blk, x, kv, mask=None):
    """One pre-LN block for one example: x (n_q, d), kv (n_kv, d), loops over heads and queries."""
    a = {k: np.asarray(v, np.float64) for k, v in blk["attn"].items()}
    h, hk = np_ln(blk["ln1"], x), np_ln(blk["ln1"], kv)
    out = np.zeros_like(x)
    for head in range(a["wq"].shape[1]):
        q = h @ a["wq"][:, head] + a["bq"][head]
        k = hk @ a["wk"][:, head] + a["bk"][head]
        v = hk @ a["wv"][:, head] + a["bv"][head]
        for i in range(x.shape[0]):
            s = k @ q[i] / math.sqrt(q.shape[1])
            allowed = np.ones(len(s), bool) if mask is None else np.asarray(mask[i])
            w = np.where(allowed, np.exp(s - s[allowed].max()), 0.0)
            w /= w.sum()
            out[i] += (w @ v) @ a["wo"][head]
    x = x + out + a["bo"]
    m = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in blk["mlp"]]
    y = np_ln(blk["ln2"], x)
    y = np_gelu(y @ m[0]["w"] + m[0]["b"]) @ m[1]["w"] + m[1]["b"]
    return x + y


def np_patchify(img, patch):
    h, w = img.shape[:2]
    out = []
    for r in range(0, h, patch):
        for c in range(0, w, patch):
            out.append(img[r:r + patch, c:c + patch].reshape(-1))
    return np.stack(out)


def np_embed(p, img, patch):
    tok = np_patchify(np.asarray(img, np.float64)[..., None], patch) @ np.asarray(p["embed"]["w"]) + np.asarray(p["embed"]["b"])
    return np.concatenate([np.asarray(p["cls"])[None], tok]) + np.asarray(p["pos"])


def np_readout(p, head, tok):
    return np_ln(p["ln"], tok) @ np.asarray(head["w"]) + np.asarray(head["b"])


def np_multitask(p, tasks, img, mode):
    """Naive Table-1 model: every token explicit, mask built from the rules by hand."""
    z = np_embed(p, img, 4)
    n_old, k = z.shape[0], len(tasks)
    cls = [np.asarray(t["cls"]) + np.asarray(p["pos"][0]) for t in tasks]
    x = np.concatenate([z] + [c[None] for c in cls])
    owner = ["old"] * n_old + list(range(k))  # query/key owner of each token
    for l, blk in enumerate(p["blocks"]):
        mems = [np.asarray(t["memory"][l]) for t in tasks]
        kv = np.concatenate([x] + mems)
        kv_owner = owner + [j for j, m in enumerate(mems) for _ in range(len(m))]
        mask = np.zeros((len(x), len(kv)), bool)
        for r, qo in enumerate(owner):
            for c, ko in enumerate(kv_owner):
                if ko == "old":
                    mask[r, c] = True
                elif qo != "old":
                    mask[r, c] = ko == qo or (mode == "extend" and ko < qo)
        x = np_block(blk, x, kv, mask)
    return np_readout(p, p["head"], x[0]), [np_readout(p, t["head"], x[n_old + j]) for j, t in enumerate(tasks)]


# ---------- tests ----------------------------------------------------------------------------------
def test_patchify_matches_loop():
    img = np.random.default_rng(0).normal(size=(3, 12, 8, 2)).astype(np.float32)
    got = np.asarray(vit.patchify(jnp.asarray(img), 4))
    assert got.shape == (3, 6, 32) and got.dtype == np.float32
    for b in range(3):
        np.testing.assert_array_equal(got[b], np_patchify(img[b], 4))


def test_patchify_errors():
    with pytest.raises(ValueError, match="patch"):
        vit.patchify(jnp.zeros((2, 8, 8, 1)), 3)
    with pytest.raises(ValueError, match="images"):
        vit.patchify(jnp.zeros((8, 8)), 4)


def test_init_shapes_and_errors(model):
    p, _ = model
    assert p["pos"].shape == (5, DIM) and p["embed"]["w"].shape == (16, DIM) and len(p["blocks"]) == DEPTH
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(p))
    with pytest.raises(ValueError, match="heads"):
        vit.init_vit(jax.random.PRNGKey(0), dim=10, heads=4)
    with pytest.raises(ValueError, match="image_size"):
        vit.init_vit(jax.random.PRNGKey(0), image_size=28, patch=5)
    with pytest.raises(ValueError, match="memory"):
        vit.init_task(jax.random.PRNGKey(0), p, memory=-1, num_classes=3)


def test_forward_matches_numpy(model):
    p, x = model
    got = np.asarray(jax.jit(vit.forward)(p, x))
    assert got.shape == (5, 3)
    for b in range(x.shape[0]):
        z = np_embed(p, x[b], 4)
        for blk in p["blocks"]:
            z = np_block(blk, z, z)
        np.testing.assert_allclose(got[b], np_readout(p, p["head"], z[0]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["concat", "extend"])
def test_multitask_matches_numpy(model, mode):
    p, x = model
    tasks = [make_task(p, 1, 2), make_task(p, 2, 3, classes=4)]
    old, logits = jax.jit(vit.forward_tasks, static_argnames="mode")(p, tasks, x, mode=mode)
    sp_old, sp_logits = jax.jit(vit.forward_single_pass)(p, tasks, x, vit.memory_mask(5, [2, 3], mode))
    assert logits[1].shape == (5, 4)
    for b in range(x.shape[0]):
        ref_old, ref = np_multitask(p, tasks, x[b], mode)
        np.testing.assert_allclose(old[b], ref_old, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sp_old[b], ref_old, rtol=1e-4, atol=1e-5)
        for j in range(2):
            np.testing.assert_allclose(logits[j][b], ref[j], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(sp_logits[j][b], ref[j], rtol=1e-4, atol=1e-5)


def test_memory_mask_table1():
    m = np.asarray(vit.memory_mask(3, [1, 2], "concat"))
    #            old old old C1 C2 M1 M2 M2
    expected = [[1, 1, 1, 0, 0, 0, 0, 0]] * 3 + [
        [1, 1, 1, 1, 0, 1, 0, 0],
        [1, 1, 1, 0, 1, 0, 1, 1]]
    np.testing.assert_array_equal(m, np.array(expected, bool))
    e = np.asarray(vit.memory_mask(3, [1, 2], "extend"))
    expected[4] = [1, 1, 1, 1, 1, 1, 1, 1]
    np.testing.assert_array_equal(e, np.array(expected, bool))
    assert np.asarray(vit.memory_mask(3, [1, 2], "none")).all()
    assert vit.memory_mask(4, [], "concat").shape == (4, 4)


def test_memory_mask_errors():
    with pytest.raises(ValueError, match="mode"):
        vit.memory_mask(3, [1], "both")
    with pytest.raises(ValueError, match="memory_sizes"):
        vit.memory_mask(3, [1, -1])
    with pytest.raises(ValueError, match="n_old"):
        vit.memory_mask(0, [1])


def test_old_logits_bit_identical_and_tasks_independent(model):
    p, x = model
    t1, t2 = make_task(p, 1, 2), make_task(p, 2, 1)
    f = jax.jit(vit.forward_tasks, static_argnames="mode")
    original = jax.jit(vit.forward)(p, x)
    o1, (a,) = f(p, [t1], x)
    o2, (a2, b2) = f(p, [t1, t2], x)
    _, (b,) = f(p, [t2], x)
    assert np.array_equal(original, o1) and np.array_equal(original, o2)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    oe, (ae, be) = f(p, [t1, t2], x, mode="extend")
    assert np.array_equal(original, oe) and np.array_equal(a, ae)
    assert not np.allclose(be, b2)  # extension: task 2 sees task 1
    # unmasked memory changes the old model: the mask is what protects it
    so, _ = jax.jit(vit.forward_single_pass)(p, [t1], x, vit.memory_mask(5, [2], "none"))
    assert np.abs(np.asarray(so) - np.asarray(original)).max() > 1e-3


def test_gradients(model):
    p, x = model
    t = make_task(p, 3, 2)

    def old_sum(task):
        return vit.forward_tasks(p, [task], x)[0].sum()

    def new_loss(task, single):
        if single:
            out = vit.forward_single_pass(p, [task], x, vit.memory_mask(5, [2]))[1][0]
        else:
            out = vit.forward_tasks(p, [task], x)[1][0]
        return (out ** 2).sum()

    g_old = jax.jit(jax.grad(old_sum))(t)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(g_old))
    grad = jax.jit(jax.grad(new_loss), static_argnums=1)
    g2, g1 = grad(t, False), grad(t, True)
    loss = jax.jit(new_loss, static_argnums=1)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(g2["memory"])).max() > 0
    # finite difference along one memory coordinate
    eps = 1e-2
    tp = dict(t, memory=t["memory"].at[1, 0, 3].add(eps))
    tm = dict(t, memory=t["memory"].at[1, 0, 3].add(-eps))
    fd = (loss(tp, False) - loss(tm, False)) / (2 * eps)
    np.testing.assert_allclose(fd, g2["memory"][1, 0, 3], rtol=2e-2, atol=1e-3)


def test_memory_valid_equals_removed_tokens(model):
    p, x = model
    t = make_task(p, 4, 3)
    inputs, _ = vit.old_stream(p, x)
    (masked,) = vit.new_streams(p, inputs, [t], memory_valid=[jnp.array([True, False, True])])
    (removed,) = vit.new_streams(p, inputs, [dict(t, memory=t["memory"][:, jnp.array([0, 2])])])
    np.testing.assert_allclose(masked, removed, rtol=1e-5, atol=1e-6)
    (none,) = vit.new_streams(p, inputs, [t], memory_valid=[jnp.zeros(3, bool)])
    (zero,) = vit.new_streams(p, inputs, [dict(t, memory=t["memory"][:, :0])])
    np.testing.assert_allclose(none, zero, rtol=1e-5, atol=1e-6)


def test_unmasked_single_pass_with_memory_columns_off_is_head_plus_class(model):
    """The chapter's unmasked head + class baseline: an unmasked model whose memory columns are masked
    out equals the unmasked model with no memory at all, and its memory gets zero gradient."""
    p, x = model
    t = make_task(p, 5, 3)
    n_old = 1 + (8 // 4) ** 2
    off = vit.memory_mask(n_old, [3], "none").at[:, n_old + 1:].set(False)
    old_off, (new_off,) = vit.forward_single_pass(p, [t], x, off)
    old_zero, (new_zero,) = vit.forward_single_pass(p, [dict(t, memory=t["memory"][:, :0])], x,
                                                     vit.memory_mask(n_old, [0], "none"))
    np.testing.assert_allclose(new_off, new_zero, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(old_off, old_zero, rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda task: vit.forward_single_pass(p, [task], x, off)[1][0].sum())(t)
    assert float(jnp.abs(g["memory"]).max()) == 0.0 and float(jnp.abs(g["cls"]).max()) > 0
    # unmasked, the old logits do depend on the new class token (the setting is destructive)
    orig = vit.forward(p, x)
    assert float(jnp.abs(old_zero - orig).max()) > 1e-4


def test_class_stream_from_cached_keys_values_equals_new_streams(model):
    p, x = model
    t = make_task(p, 6, 3)
    inputs, _ = vit.old_stream(p, x)
    kv = vit.old_keys_values(p, inputs)
    (ref,) = vit.new_streams(p, inputs, [t])
    np.testing.assert_allclose(vit.class_stream(p, kv, t), ref, rtol=1e-5, atol=1e-5)
    valid = jnp.array([True, False, True])
    (ref_v,) = vit.new_streams(p, inputs, [t], memory_valid=[valid])
    np.testing.assert_allclose(vit.class_stream(p, kv, t, valid), ref_v, rtol=1e-5, atol=1e-5)
    g1 = jax.grad(lambda task: vit.class_stream(p, kv, task, valid).sum())(t)
    g2 = jax.grad(lambda task: vit.new_streams(p, inputs, [task], memory_valid=[valid])[0].sum())(t)
    np.testing.assert_allclose(g1["memory"], g2["memory"], rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(g1["memory"][:, 1]).max()) == 0.0
    with pytest.raises(ValueError, match="old_kv"):
        vit.class_stream(p, kv[:1], t)
    with pytest.raises(ValueError, match="inputs"):
        vit.old_keys_values(p, inputs[:1])


def test_old_stream_caches_block_inputs(model):
    p, x = model
    inputs, z = vit.old_stream(p, x)
    assert len(inputs) == DEPTH and inputs[0].shape == (5, 5, DIM)
    np.testing.assert_array_equal(inputs[0], vit.embed(p, x))


def test_task_validation_and_concat(model):
    p, x = model
    t = make_task(p, 1, 2)
    with pytest.raises(ValueError, match="memory"):
        vit.forward_tasks(p, [dict(t, memory=jnp.zeros((DEPTH + 1, 2, DIM)))], x)
    with pytest.raises(ValueError, match="keys"):
        vit.forward_tasks(p, [{"cls": t["cls"]}], x)
    with pytest.raises(ValueError, match="mask"):
        vit.forward_single_pass(p, [t], x, jnp.ones((3, 3), bool))
    with pytest.raises(ValueError, match="mode"):
        vit.forward_tasks(p, [t], x, mode="none")
    merged = vit.concat_tasks([t], [make_task(p, 2, 1)])
    assert len(merged) == 2 and merged[0] is t
    other = dict(t, memory=jnp.zeros((DEPTH, 1, DIM + 1)), cls=jnp.zeros(DIM + 1))
    with pytest.raises(ValueError, match="backbones"):
        vit.concat_tasks([t], [other])


def test_count_params(model):
    p, _ = model
    t = vit.init_task(jax.random.PRNGKey(0), p, memory=4, num_classes=10)
    assert vit.count_params(t) == DIM + DEPTH * 4 * DIM + DIM * 10 + 10
