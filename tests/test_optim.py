"""Tests for jaxpapers.optim: frozen leaves must be bit-unchanged, weight decay included."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import optim


def setup():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {"backbone": {"w": jax.random.normal(k1, (4, 3))},
              "tasks": [{"memory": jax.random.normal(k2, (2, 3))}, {"memory": jax.random.normal(k3, (2, 3))}]}
    x = jax.random.normal(jax.random.PRNGKey(9), (8, 4))

    def loss(p):
        h = x @ p["backbone"]["w"]
        return sum(jnp.sum((h @ t["memory"].T) ** 2) for t in p["tasks"])

    return params, loss


def run(tx, params, loss, steps):
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_trainable_where_paths():
    params, _ = setup()
    t = optim.trainable_where(params, lambda path: path[:2] == ("tasks", 1))
    assert t == {"backbone": {"w": False}, "tasks": [{"memory": False}, {"memory": True}]}
    assert optim.count_trainable(params, t) == 6


def test_frozen_leaves_bit_unchanged_with_adamw():
    params, loss = setup()
    trainable = optim.trainable_where(params, lambda path: path[:2] == ("tasks", 1))
    adamw = optax.adamw(1e-2, weight_decay=0.5)
    out = run(optim.partition(adamw, trainable), params, loss, 25)
    assert np.array_equal(out["backbone"]["w"], params["backbone"]["w"])
    assert np.array_equal(out["tasks"][0]["memory"], params["tasks"][0]["memory"])
    assert not np.allclose(out["tasks"][1]["memory"], params["tasks"][1]["memory"])

    # the trainable leaf follows plain AdamW applied to that leaf alone
    def loss_sub(m):
        return loss({"backbone": params["backbone"], "tasks": [params["tasks"][0], {"memory": m}]})

    ref = run(adamw, params["tasks"][1]["memory"], loss_sub, 25)
    np.testing.assert_allclose(out["tasks"][1]["memory"], ref, rtol=1e-6, atol=1e-7)


def test_the_weight_decay_trap():
    """Without partitioning, zero gradients do not freeze a leaf: AdamW's decay moves it."""
    params, loss = setup()

    def loss_task1_only(p):  # the backbone gets a zero gradient here
        return jnp.sum(p["tasks"][1]["memory"] ** 2) + 0.0 * jnp.sum(p["backbone"]["w"])

    out = run(optax.adamw(1e-2, weight_decay=0.5), params, loss_task1_only, 10)
    assert not np.array_equal(out["backbone"]["w"], params["backbone"]["w"])
    trainable = optim.trainable_where(params, lambda path: path[0] == "tasks")
    out = run(optim.partition(optax.adamw(1e-2, weight_decay=0.5), trainable), params, loss_task1_only, 10)
    assert np.array_equal(out["backbone"]["w"], params["backbone"]["w"])


def test_partition_inside_jit_and_state_is_empty_for_frozen():
    params, loss = setup()
    trainable = optim.trainable_where(params, lambda path: path[0] == "tasks")
    tx = optim.partition(optax.adamw(1e-2, weight_decay=0.1), trainable)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    p = params
    for _ in range(5):
        p, state = step(p, state)
    assert np.array_equal(p["backbone"]["w"], params["backbone"]["w"])
    n_state = sum(x.size for x in jax.tree_util.tree_leaves(state))
    assert n_state == 2 * 12 + 1  # Adam's mu and nu of the trainable leaves, plus one step count


def test_errors():
    params, _ = setup()
    with pytest.raises(ValueError, match="bools"):
        optim.partition(optax.adam(1e-3), jax.tree_util.tree_map(lambda _: 1, params))
    with pytest.raises(ValueError, match="callable"):
        optim.trainable_where(params, True)
    with pytest.raises(ValueError, match="structure"):
        optim.count_trainable(params, {"backbone": True})
