import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpapers import train


def quadratic_loss(params, key):
    return jnp.sum((params["w"] - 3.0) ** 2)


def test_fit_matches_a_python_loop_of_sgd():
    lr, steps = 0.1, 25
    params, hist = train.fit(quadratic_loss, {"w": jnp.zeros(3)}, optax.sgd(lr), jax.random.PRNGKey(0), steps)
    w, losses = np.zeros(3), []
    for _ in range(steps):  # naive reference: w <- w - lr * 2 (w - 3)
        losses.append(np.sum((w - 3.0) ** 2))
        w = w - lr * 2 * (w - 3.0)
    np.testing.assert_allclose(params["w"], w, rtol=1e-5)
    np.testing.assert_allclose(hist["loss"], losses, rtol=1e-5, atol=1e-7)  # float32 cancellation near w = 3
    assert hist["loss"].shape == (steps,) and hist["grad_norm"].shape == (steps,)
    assert params["w"].dtype == jnp.float32


def test_chunks_give_the_same_result_as_one_scan():
    def noisy(params, key):
        return jnp.sum((params - jax.random.normal(key, params.shape)) ** 2)

    p1, h1 = train.fit(noisy, jnp.ones(4), optax.adam(0.05), jax.random.PRNGKey(1), 40)
    p2, h2 = train.fit(noisy, jnp.ones(4), optax.adam(0.05), jax.random.PRNGKey(1), 40, chunks=4)
    np.testing.assert_allclose(p1, p2, rtol=1e-6)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-6)


def test_aux_metrics_and_resume():
    def loss_with_metrics(params, key):
        loss = jnp.sum(params**2)
        return loss, {"abs_mean": jnp.mean(jnp.abs(params))}

    tx = optax.sgd(0.1)
    state, hist = train.fit_state(loss_with_metrics, jnp.ones(2), tx, jax.random.PRNGKey(0), 10)
    assert set(hist) == {"loss", "grad_norm", "abs_mean"}
    state2, hist2 = train.fit_state(loss_with_metrics, None, tx, None, 10, state=state)
    _, hist_all = train.fit_state(loss_with_metrics, jnp.ones(2), tx, jax.random.PRNGKey(0), 20)
    np.testing.assert_allclose(np.concatenate([hist["loss"], hist2["loss"]]), hist_all["loss"], rtol=1e-6)


def test_scan_fit_vmaps_over_seeds():
    tx = optax.sgd(0.1)

    def run(w0):
        state = train.init_state({"w": w0}, tx, jax.random.PRNGKey(0))
        return train.scan_fit(quadratic_loss, tx, state, 5)

    states, hist = jax.vmap(run)(jnp.stack([jnp.zeros(3), jnp.ones(3)]))
    assert hist["loss"].shape == (2, 5)
    assert states.params["w"].shape == (2, 3)


def test_unrolled_scan_fit_takes_the_same_steps():
    def noisy(params, key):
        return jnp.sum((params - jax.random.normal(key, params.shape)) ** 2)

    tx = optax.adam(0.05)
    state = train.init_state(jnp.ones(4), tx, jax.random.PRNGKey(1))
    looped, h1 = jax.jit(lambda s: train.scan_fit(noisy, tx, s, 6))(state)
    for unroll in (True, 2, 6):
        unrolled, h2 = jax.jit(lambda s: train.scan_fit(noisy, tx, s, 6, unroll=unroll))(state)
        np.testing.assert_allclose(unrolled.params, looped.params, rtol=1e-6)
        np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-6)
    for bad in (0, -1, 1.5, "yes", None):
        with pytest.raises(ValueError, match="unroll"):
            train.scan_fit(noisy, tx, state, 6, unroll=bad)


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(steps=10, chunks=3), dict(steps=2.5)])
def test_bad_step_counts(kwargs):
    with pytest.raises(ValueError):
        train.fit(quadratic_loss, {"w": jnp.zeros(1)}, optax.sgd(0.1), jax.random.PRNGKey(0), **kwargs)


def test_loss_fn_must_return_scalar_or_pair():
    with pytest.raises(ValueError, match="loss_fn"):
        train.fit(lambda p, k: (jnp.sum(p), 1.0, 2.0), jnp.ones(1), optax.sgd(0.1), jax.random.PRNGKey(0), 2)


def test_smooth_is_a_trailing_mean():
    v = np.arange(6, dtype=float)
    np.testing.assert_allclose(train.smooth(v, 2), [0, 0.5, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(train.smooth(v, 1), v)
    with pytest.raises(ValueError):
        train.smooth(np.ones((2, 2)))
    with pytest.raises(ValueError):
        train.smooth(v, 0)


def test_evaluate_returns_host_arrays():
    out = train.evaluate(lambda x: x * 2, jnp.ones(3))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, 2 * np.ones(3))


def test_global_norm_matches_numpy():
    tree = {"a": jnp.array([3.0, 0.0]), "b": [jnp.array([[4.0]])]}
    assert float(train.global_norm(tree)) == pytest.approx(5.0)


def test_fit_vmapped_matches_one_run_at_a_time():
    """The stacked runs equal a plain loop of fit_state, one run at a time (a noisy loss, so the keys matter)."""
    tx = optax.adam(0.05)

    def noisy(p, key, target=None):
        t = 1.0 if target is None else target
        return jnp.sum((p["w"] - t + 0.1 * jax.random.normal(key, p["w"].shape)) ** 2)

    w0 = [jnp.zeros(3), jnp.ones(3), jnp.full(3, -2.0)]
    keys = [jax.random.PRNGKey(i) for i in range(3)]
    targets = jnp.array([0.5, 1.0, 3.0])
    stacked = train.stack_states([train.init_state({"w": w}, tx, k) for w, k in zip(w0, keys)])
    final, hist, frames = train.fit_vmapped(noisy, tx, stacked, 12, chunks=3, aux=targets,
                                            snapshot=lambda p: np.asarray(p["w"]))
    assert hist["loss"].shape == (3, 12) and hist["grad_norm"].shape == (3, 12)
    assert len(frames) == 3 and frames[0].shape == (3, 3)
    np.testing.assert_array_equal(frames[0], np.stack([np.asarray(w) for w in w0]))
    for r in range(3):
        state, h = train.fit_state(lambda p, k: noisy(p, k, targets[r]), None, tx, None, 12,
                                   state=train.init_state({"w": w0[r]}, tx, keys[r]))
        np.testing.assert_allclose(hist["loss"][r], h["loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(final.params["w"][r], state.params["w"], rtol=1e-5, atol=1e-6)
    # without aux: the loss takes (params, key)
    _, h2, none = train.fit_vmapped(noisy, tx, stacked, 4)
    assert h2["loss"].shape == (3, 4) and none == []


@pytest.mark.parametrize("kwargs, match", [(dict(steps=0), "steps"), (dict(steps=10, chunks=3), "divisor"),
                                           (dict(steps=4, aux=jnp.zeros(2)), "leading run axis")])
def test_fit_vmapped_rejects_bad_input(kwargs, match):
    tx = optax.sgd(0.1)
    stacked = train.stack_states([train.init_state({"w": jnp.zeros(2)}, tx, jax.random.PRNGKey(i)) for i in range(3)])
    with pytest.raises(ValueError, match=match):
        train.fit_vmapped(lambda p, k, *a: jnp.sum(p["w"] ** 2), tx, stacked, **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        train.stack_states([])


def test_strong_types_drops_only_the_weak_tag():
    key = jax.random.PRNGKey(0)
    typed_key = jax.random.key(1)
    tree = {"scale": jnp.asarray(0.3), "w": jnp.ones(2), "n": jnp.asarray(3), "py": 0.5, "flag": True,
            "key": key, "typed_key": typed_key}
    assert tree["scale"].weak_type and tree["n"].weak_type and not tree["w"].weak_type
    out = train.strong_types(tree)
    for name in ("scale", "n", "py"):
        assert not out[name].weak_type, name
    assert out["scale"].dtype == jnp.float32 and out["n"].dtype == jnp.int32 and out["py"].dtype == jnp.float32
    np.testing.assert_array_equal(out["scale"], np.float32(0.3))
    assert float(out["py"]) == np.float32(0.5) and out["flag"] is True
    assert out["w"] is tree["w"] and out["key"] is key and out["typed_key"] is typed_key
    # inside a vmap (how chapters build one state per seed), the weak tag survives unless dropped
    stacked = jax.vmap(lambda k: {"s": jnp.asarray(0.5), "w": jax.random.normal(k, (2,))})(jax.random.split(key, 3))
    assert stacked["s"].weak_type and not train.strong_types(stacked)["s"].weak_type


def _traced_loss(traces):
    def loss(p, key):
        traces.append(1)   # runs once per trace: once per compile of the chunk function
        return jnp.sum((p["w"] * p["s"] - jax.random.normal(key, (3,))) ** 2)
    return loss


def test_a_weakly_typed_parameter_does_not_recompile_the_chunks():
    """One optimiser step makes a weak parameter (and its Adam moments) strongly typed; without
    strong_types the second and third chunks each compiled again."""
    params = {"w": jnp.ones(3), "s": jnp.asarray(0.5)}
    assert params["s"].weak_type
    tx, key = optax.adam(0.1), jax.random.PRNGKey(0)
    counts = {}
    for chunks in (1, 4):
        traces = []
        train.fit(_traced_loss(traces), params, tx, key, 8, chunks=chunks)
        counts[chunks] = len(traces)
    assert counts[4] == counts[1] >= 1
    # the same for a stack of runs, including a state built without init_state
    weak = train.TrainState(params, tx.init(params), key)
    assert weak.params["s"].weak_type and weak.opt_state[0].mu["s"].weak_type
    stacked = train.stack_states([weak, weak])
    assert stacked.params["s"].weak_type
    for chunks in (1, 4):
        traces = []
        train.fit_vmapped(_traced_loss(traces), tx, stacked, 8, chunks=chunks)
        counts[chunks] = len(traces)
    assert counts[4] == counts[1] >= 1
