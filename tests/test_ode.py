import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import ode


def naive_rk4(f, y0, dt, steps, args=()):
    """Plain NumPy loop reference (float64)."""
    y = np.asarray(y0, dtype=np.float64)
    out, t = [y.copy()], 0.0
    for _ in range(steps):
        k1 = f(y, t, *args)
        k2 = f(y + dt / 2 * k1, t + dt / 2, *args)
        k3 = f(y + dt / 2 * k2, t + dt / 2, *args)
        k4 = f(y + dt * k3, t + dt, *args)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += dt
        out.append(y.copy())
    return np.array(out)


def sir_np(y, t, beta, D):
    s, i = y[0], y[1]
    return np.array([-beta * s * i, beta * s * i - i / D, beta * s * i])


def test_matches_naive_loop_and_shapes():
    y0 = jnp.array([0.99, 0.01, 0.0], jnp.float32)
    ts, ys = ode.rk4(ode.sir_rhs, y0, dt=0.1, steps=300, save_every=10, args=(0.5, 4.0))
    assert ts.shape == (31,) and ys.shape == (31, 3) and ys.dtype == jnp.float32
    ref = naive_rk4(sir_np, y0, 0.1, 300, (0.5, 4.0))[::10]
    np.testing.assert_allclose(np.asarray(ys), ref, atol=2e-6)
    np.testing.assert_allclose(np.asarray(ts), np.arange(31) * 1.0, atol=1e-5)


def test_fourth_order_convergence_and_time_dependence():
    # dy/dt = cos(t) y  ->  y = exp(sin t); an explicitly time-dependent field.
    f = lambda y, t: jnp.cos(t) * y
    errs = []
    for steps in (10, 20):
        _, ys = ode.rk4(f, jnp.array(1.0), dt=2.0 / steps, steps=steps)
        errs.append(abs(float(ys[-1]) - np.exp(np.sin(2.0))))
    assert 10 < errs[0] / errs[1] < 24  # 2^4 = 16 for a fourth-order scheme


def test_pytree_state_and_t0():
    f = lambda y, t: {"a": -y["a"], "b": 2 * y["b"]}
    ts, ys = ode.rk4(f, {"a": jnp.ones(2), "b": jnp.ones(())}, dt=0.01, steps=100, t0=1.0)
    assert ys["a"].shape == (101, 2) and ys["b"].shape == (101,)
    np.testing.assert_allclose(float(ts[-1]), 2.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ys["a"][-1]), np.exp(-1.0), rtol=1e-5)
    np.testing.assert_allclose(float(ys["b"][-1]), np.exp(2.0), rtol=1e-5)


def test_vmap_and_grad():
    betas = jnp.array([0.2, 0.3, 0.4])
    inc = jax.vmap(lambda b: ode.sir_daily_incidence(b, 10.0, 1e-4, days=20, population=1e6))(betas)
    loop = np.stack([np.asarray(ode.sir_daily_incidence(b, 10.0, 1e-4, days=20, population=1e6)) for b in betas])
    np.testing.assert_allclose(np.asarray(inc), loop, rtol=1e-6)
    # gradient of total incidence w.r.t. beta against a central difference
    tot = lambda b: jnp.sum(ode.sir_daily_incidence(b, 10.0, 1e-4, days=20))
    g = float(jax.grad(tot)(0.3))
    fd = (float(tot(0.3 + 1e-2)) - float(tot(0.3 - 1e-2))) / 2e-2
    np.testing.assert_allclose(g, fd, rtol=1e-2)


def test_sir_invariants_and_early_growth():
    beta, D, i0 = 0.3, 10.0, 1e-6
    inc = np.asarray(ode.sir_daily_incidence(beta, D, i0, days=30, population=1e7))
    assert inc.shape == (30,) and np.all(inc > 0)
    # early on s ~ 1 and i ~ i0 exp((beta - 1/D) t): growth rate r = beta - 1/D
    r_hat = np.polyfit(np.arange(10, 30), np.log(inc[10:]), 1)[0]
    np.testing.assert_allclose(r_hat, beta - 1 / D, atol=2e-3)
    # whole epidemic: every new infection leaves s and enters c, so s + c stays at s(0)
    _, ys = ode.rk4(ode.sir_rhs, jnp.array([1 - 1e-3, 1e-3, 0.0]), dt=0.1, steps=2000, args=(beta, D))
    np.testing.assert_allclose(np.asarray(ys[:, 0] + ys[:, 2]), 1 - 1e-3, atol=1e-5)
    # final-size relation log(s_inf / s0) = -R0 (1 - s_inf) (i0 -> 0 limit, loose)
    s_inf = float(ys[-1, 0])
    np.testing.assert_allclose(np.log(s_inf), -beta * D * (1 - s_inf), rtol=2e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dt=0.1, steps=0), "steps"),
        (dict(dt=0.1, steps=10, save_every=3), "multiple"),
        (dict(dt=0.1, steps=10, save_every=0), "save_every"),
        (dict(dt=0.1, steps=2.5), "steps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ode.rk4(lambda y, t: -y, jnp.ones(2), **kwargs)


def test_bad_sir_arguments():
    with pytest.raises(ValueError, match="dt"):
        ode.sir_daily_incidence(0.3, 10.0, 1e-6, days=10, dt=0.3)
    with pytest.raises(ValueError, match="days"):
        ode.sir_daily_incidence(0.3, 10.0, 1e-6, days=0)
    with pytest.raises(ValueError, match="args"):
        ode.rk4(lambda y, t, a: -y, jnp.ones(2), dt=0.1, steps=2, args=[1.0])


def test_sir_incidence_float32_by_default_float64_with_x64():
    lam = ode.sir_daily_incidence(0.3, 10.0, 1e-6, days=5, population=1e7)
    assert lam.dtype == jnp.float32
    with jax.enable_x64(True):
        lam64 = ode.sir_daily_incidence(0.3, 10.0, 1e-6, days=5, population=1e7)
        assert lam64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(lam), np.asarray(lam64), rtol=1e-3)
