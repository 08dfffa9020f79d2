"""Tests for jaxpapers.attention against naive NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import attention

KEY = jax.random.PRNGKey(0)
rng = np.random.default_rng(0)


def naive_mha(params, x, x_kv, softmax, scaled, mask=None):
    """Per-head, per-query loop in float64; ``mask: (heads, n_q, n_kv)`` or None."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, x_kv = np.asarray(x, np.float64), np.asarray(x_kv, np.float64)
    heads, key_size = p["wq"].shape[1], p["wq"].shape[2]
    out = np.zeros((x.shape[0], p["wo"].shape[2]))
    weights = np.zeros((heads, x.shape[0], x_kv.shape[0]))
    for h in range(heads):
        for j in range(x.shape[0]):
            q = x[j] @ p["wq"][:, h] + (p["bq"][h] if "bq" in p else 0)
            s = np.array([q @ (x_kv[i] @ p["wk"][:, h] + (p["bk"][h] if "bk" in p else 0))
                          for i in range(x_kv.shape[0])])
            if scaled:
                s = s / np.sqrt(key_size)
            m = np.ones_like(s, bool) if mask is None else mask[h, j]
            if softmax:
                if m.any():
                    e = np.where(m, np.exp(s - s[m].max()), 0.0)
                    w = e / e.sum()
                else:
                    w = np.zeros_like(s)
            else:
                w = np.where(m, s, 0.0)
            weights[h, j] = w
            for i in range(x_kv.shape[0]):
                v = x_kv[i] @ p["wv"][:, h] + (p["bv"][h] if "bv" in p else 0)
                out[j] += w[i] * (v @ p["wo"][h])
    if "bo" in p:
        out += p["bo"]
    return out, weights


def rand_params(d=6, heads=2, key_size=3, **kw):
    p = attention.init_mha(KEY, d, heads, key_size, **kw)
    if "bq" in p:  # give biases non-zero values so they are tested
        p = {k: (v + 0.1 * jnp.asarray(rng.normal(size=v.shape), jnp.float32) if k.startswith("b") else v)
             for k, v in p.items()}
    return p


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("use_bias", [False, True])
def test_mha_matches_naive_loop(softmax, scaled, use_bias):
    p = rand_params(use_bias=use_bias)
    x = jnp.asarray(rng.normal(size=(3, 5, 6)), jnp.float32)
    out, w = attention.mha(p, x, softmax=softmax, scaled=scaled)
    assert out.shape == (3, 5, 6) and w.shape == (3, 2, 5, 5) and out.dtype == jnp.float32
    for b in range(3):
        ref_out, ref_w = naive_mha(p, x[b], x[b], softmax, scaled)
        np.testing.assert_allclose(np.asarray(out[b]), ref_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(w[b]), ref_w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("softmax", [True, False])
def test_separate_key_value_tokens(softmax):
    p = rand_params(d=4, heads=3, key_size=2, value_size=5, d_out=7)
    x = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    kv = jnp.asarray(rng.normal(size=(2, 6, 4)), jnp.float32)
    out, w = attention.mha(p, x, kv, softmax=softmax, scaled=False)
    assert out.shape == (2, 3, 7) and w.shape == (2, 3, 3, 6)
    for b in range(2):
        ref_out, ref_w = naive_mha(p, x[b], kv[b], softmax, False)
        np.testing.assert_allclose(np.asarray(out[b]), ref_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(w[b]), ref_w, rtol=1e-4, atol=1e-5)


def test_softmax_rows_sum_to_one():
    p = rand_params()
    x = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)  # no batch dims
    _, w = attention.mha(p, x)
    assert w.shape == (2, 4, 4)
    np.testing.assert_allclose(np.asarray(w.sum(-1)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("softmax", [True, False])
def test_mask_matches_naive_loop_including_fully_masked_row(softmax):
    p = rand_params()
    x = jnp.asarray(rng.normal(size=(2, 5, 6)), jnp.float32)
    causal = np.tril(np.ones((5, 5), bool))
    causal[2] = False  # a fully masked query row gets all-zero weights
    mask = jnp.asarray(causal)  # broadcasts over batch and heads
    out, w = attention.mha(p, x, softmax=softmax, mask=mask)
    for b in range(2):
        ref_out, ref_w = naive_mha(p, x[b], x[b], softmax, True, np.broadcast_to(causal, (2, 5, 5)))
        np.testing.assert_allclose(np.asarray(out[b]), ref_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(w[b]), ref_w, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(w)[:, :, 2] == 0)
    assert np.all(np.asarray(w)[:, :, ~causal] == 0)


def test_per_head_mask():
    p = rand_params()
    x = jnp.asarray(rng.normal(size=(1, 4, 6)), jnp.float32)
    m = rng.random((2, 4, 4)) > 0.3
    out, w = attention.mha(p, x, mask=jnp.asarray(m))
    ref_out, ref_w = naive_mha(p, x[0], x[0], True, True, m)
    np.testing.assert_allclose(np.asarray(out[0]), ref_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(w[0]), ref_w, rtol=1e-4, atol=1e-5)


def test_init_mha_shapes_scale_and_bias():
    p = attention.init_mha(KEY, 8, 4, 16, value_size=5, d_out=3, init_scale=0.002, use_bias=True)
    assert p["wq"].shape == (8, 4, 16) and p["wk"].shape == (8, 4, 16)
    assert p["wv"].shape == (8, 4, 5) and p["wo"].shape == (4, 5, 3)
    assert p["bq"].shape == (4, 16) and p["bv"].shape == (4, 5) and p["bo"].shape == (3,)
    assert abs(float(jnp.std(p["wq"])) - 0.002) < 0.0004
    q = attention.init_mha(KEY, 400, 1, 50)
    assert abs(float(jnp.std(q["wq"])) - 1 / 20) < 0.003  # LeCun: 1/sqrt(fan_in)
    assert "bq" not in q


def test_gradients_flow_and_match_finite_differences():
    p = rand_params(d=4, heads=1, key_size=2)
    x = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    f = lambda wq: jnp.sum(attention.mha(dict(p, wq=wq), x)[0] ** 2)
    g = jax.grad(f)(p["wq"])
    h = 1e-2
    e = jnp.zeros_like(p["wq"]).at[1, 0, 1].set(h)
    fd = (f(p["wq"] + e) - f(p["wq"] - e)) / (2 * h)
    np.testing.assert_allclose(float(g[1, 0, 1]), float(fd), rtol=2e-2, atol=1e-4)


def test_mha_value_errors():
    p = rand_params()
    with pytest.raises(ValueError, match="x must have shape"):
        attention.mha(p, jnp.zeros((6,)))
    with pytest.raises(ValueError, match="features"):
        attention.mha(p, jnp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="x_kv"):
        attention.mha(p, jnp.zeros((2, 3, 6)), jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="leading dims"):
        attention.mha(p, jnp.zeros((2, 3, 6)), jnp.zeros((3, 3, 6)))
    with pytest.raises(ValueError, match="mask"):
        attention.mha(p, jnp.zeros((2, 3, 6)), mask=jnp.ones((4, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        attention.mha(p, jnp.zeros((2, 3, 6)), mask=jnp.ones((5, 2, 3, 3), bool))
    for kwargs, name in (({"d_model": 0}, "d_model"), ({"num_heads": 1.5}, "num_heads"),
                         ({"key_size": -1}, "key_size"), ({"init_scale": -1.0}, "init_scale"),
                         ({"value_size": 0}, "value_size")):
        args = dict(d_model=4, num_heads=1, key_size=2) | kwargs
        with pytest.raises(ValueError, match=name):
            attention.init_mha(KEY, **args)


def test_layer_norm_matches_numpy():
    ln = attention.init_layer_norm(5)
    ln = {"scale": ln["scale"] * 2.0, "bias": ln["bias"] + 0.5}
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * 2.0 + 0.5
    np.testing.assert_allclose(np.asarray(attention.layer_norm(ln, jnp.asarray(x))), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="features"):
        attention.layer_norm(ln, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="d"):
        attention.init_layer_norm(0)


def test_mlp_matches_numpy():
    layers = attention.init_mlp(KEY, (3, 7, 2))
    assert [l["w"].shape for l in layers] == [(3, 7), (7, 2)]
    x = rng.normal(size=(4, 3)).astype(np.float32)
    w1, b1, w2, b2 = (np.asarray(layers[i][k], np.float64) for i in (0, 1) for k in ("w", "b"))
    relu = lambda z: np.maximum(z, 0)
    ref = relu(x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(np.asarray(attention.mlp(layers, jnp.asarray(x), jax.nn.relu)), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="sizes"):
        attention.init_mlp(KEY, (3,))


@pytest.mark.parametrize("pre_ln", [True, False])
def test_block_pre_and_post_ln_match_numpy(pre_ln):
    p = attention.init_block(KEY, 6, 2, mlp_ratio=2)
    x = jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)
    kv = jnp.asarray(rng.normal(size=(2, 5, 6)), jnp.float32)
    out, w = attention.block(p, x, kv, pre_ln=pre_ln)
    assert out.shape == (2, 4, 6) and w.shape == (2, 2, 4, 5)
    xn, kvn = np.asarray(x, np.float64), np.asarray(kv, np.float64)

    def ln(q, z):
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-6)
        return z * np.asarray(q["scale"]) + np.asarray(q["bias"])

    def mlp(z):
        l0, l1 = p["mlp"]
        return np.asarray(jax.nn.gelu(jnp.asarray(z @ np.asarray(l0["w"]) + np.asarray(l0["b"]), jnp.float32)),
                          np.float64) @ np.asarray(l1["w"]) + np.asarray(l1["b"])

    for b in range(2):
        if pre_ln:
            a, _ = naive_mha(p["attn"], ln(p["ln1"], xn[b]), ln(p["ln1"], kvn[b]), True, True)
            h = xn[b] + a
            ref = h + mlp(ln(p["ln2"], h))
        else:
            a, _ = naive_mha(p["attn"], xn[b], kvn[b], True, True)
            h = ln(p["ln1"], xn[b] + a)
            ref = ln(p["ln2"], h + mlp(h))
        np.testing.assert_allclose(np.asarray(out[b]), ref, rtol=1e-3, atol=1e-4)


def test_block_self_attention_default_and_errors():
    p = attention.init_block(KEY, 6, 3)
    x = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    a, _ = attention.block(p, x)
    b, _ = attention.block(p, x, x)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        attention.init_block(KEY, 7, 2)
    with pytest.raises(ValueError, match="num_heads"):
        attention.init_block(KEY, 6, 0)
    assert attention.init_block(KEY, 7, 2, key_size=3)["attn"]["wq"].shape == (7, 2, 3)
