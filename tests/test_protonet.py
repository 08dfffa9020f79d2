"""Tests for jaxpapers.protonet against NumPy loops."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import protonet


def test_prototypes_are_class_means_with_mask():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(7, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 2, 0, 2, 2])
    mask = np.array([1, 1, 1, 1, 1, 0, 1], bool)
    got = np.asarray(protonet.prototypes(jnp.asarray(phi), jnp.asarray(y), 4, jnp.asarray(mask)))
    for c in range(3):
        np.testing.assert_allclose(got[c], phi[(y == c) & mask].mean(0), atol=1e-6)
    np.testing.assert_array_equal(got[3], 0)   # empty class


def test_logits_are_negative_squared_distances_and_linear_form():
    rng = np.random.default_rng(1)
    q, mu = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    got = np.asarray(protonet.logits(jnp.asarray(q), jnp.asarray(mu)))
    ref = np.array([[-np.sum((qi - m) ** 2) for m in mu] for qi in q])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    w, b = protonet.linear_weights(jnp.asarray(mu))
    lin = q @ np.asarray(w) + np.asarray(b)
    np.testing.assert_allclose(lin - np.sum(q**2, 1, keepdims=True), ref, atol=1e-4)


def test_joint_logits_embed_support_and_queries_in_one_batch():
    rng = np.random.default_rng(2)
    sx, qx = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    sy = np.array([0, 1, 1, 0])
    calls = []

    def embed(x):  # batch-dependent: centred over the batch it sees
        calls.append(x.shape[0])
        return x - x.mean(0)

    got = np.asarray(protonet.joint_logits(embed, jnp.asarray(sx), jnp.asarray(sy), jnp.asarray(qx), 2))
    assert calls == [10]
    phi = np.concatenate([sx, qx]) - np.concatenate([sx, qx]).mean(0)
    mu = np.stack([phi[:4][sy == c].mean(0) for c in range(2)])
    ref = -((phi[4:, None, :] - mu[None]) ** 2).sum(-1)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("call", [
    lambda: protonet.joint_logits(lambda x: x, jnp.zeros((3, 2)), jnp.zeros(3, int), jnp.zeros((2, 3)), 2),
    lambda: protonet.joint_logits(lambda x: x[:1], jnp.zeros((3, 2)), jnp.zeros(3, int), jnp.zeros((2, 2)), 2),
    lambda: protonet.prototypes(jnp.zeros((3, 2)), jnp.zeros(3, int), 0),
    lambda: protonet.prototypes(jnp.zeros((3, 2)), jnp.zeros(4, int), 2),
    lambda: protonet.prototypes(jnp.zeros((3, 2)), jnp.zeros(3, int), 2, mask=jnp.ones(2)),
    lambda: protonet.logits(jnp.zeros((3, 2)), jnp.zeros((2, 3))),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
