import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers.unroll import unroll


def _step(w, x):
    # a tiny inner loop: one SGD step on (w x - 1)^2, loss measured after the step
    g = 2 * (w * x - 1.0) * x
    w = w - 0.1 * g
    return w, (w * x - 1.0) ** 2


def _loop(w, xs, truncation=None):
    losses = []
    for t, x in enumerate(xs):
        if truncation and t > 0 and t % truncation == 0:
            w = jax.lax.stop_gradient(w)
        w, l = _step(w, x)
        losses.append(l)
    return w, jnp.stack(losses)


def test_matches_python_loop():
    xs = jnp.linspace(0.5, 1.5, 7)
    w, losses = unroll(_step, jnp.float32(0.3), xs)
    w_ref, l_ref = _loop(jnp.float32(0.3), xs)
    assert losses.shape == (7,) and losses.dtype == jnp.float32
    np.testing.assert_allclose(losses, l_ref, rtol=1e-5)
    np.testing.assert_allclose(w, w_ref, rtol=1e-5)


@pytest.mark.parametrize("truncation", [None, 1, 2, 3])
def test_truncated_gradient_matches_manual(truncation):
    xs = jnp.linspace(0.5, 1.5, 7)
    f = lambda w0: unroll(_step, w0, xs, truncation=truncation)[1].mean()
    f_ref = lambda w0: _loop(w0, xs, truncation)[1].mean()
    np.testing.assert_allclose(jax.grad(f)(0.3), jax.grad(f_ref)(0.3), rtol=1e-5)
    np.testing.assert_allclose(f(0.3), f_ref(0.3), rtol=1e-6)  # truncation never changes values


def test_truncation_cuts_gradient():
    xs = jnp.linspace(0.5, 1.5, 6)
    full = jax.grad(lambda w0: unroll(_step, w0, xs)[1][-1])(0.3)
    cut = jax.grad(lambda w0: unroll(_step, w0, xs, truncation=2)[1][-1])(0.3)
    assert abs(float(full)) > 1e-4 and float(cut) == 0.0  # last loss only sees the last 2 steps


def test_pytree_state_and_inputs():
    def step(s, x):
        s = {"a": s["a"] + x["u"], "b": s["b"] * x["v"]}
        return s, s["a"].sum() + s["b"]
    xs = {"u": jnp.ones((4, 3)), "v": jnp.full((4,), 2.0)}
    s, l = unroll(step, {"a": jnp.zeros(3), "b": jnp.float32(1.0)}, xs)
    np.testing.assert_allclose(s["a"], 4.0)
    np.testing.assert_allclose(l, [3 + 2, 6 + 4, 9 + 8, 12 + 16])


def test_bad_input():
    with pytest.raises(ValueError, match="truncation"):
        unroll(_step, 0.0, jnp.ones(3), truncation=0)
    with pytest.raises(ValueError, match="leading"):
        unroll(lambda s, x: (s, 0.0), 0.0, {"a": jnp.ones(3), "b": jnp.ones(4)})
    with pytest.raises(ValueError, match="xs"):
        unroll(lambda s, x: (s, 0.0), 0.0, {})
