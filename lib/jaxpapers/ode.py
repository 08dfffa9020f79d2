"""Fixed-step ODE integration in one ``lax.scan`` (jit-, grad- and vmap-able).

:func:`rk4` integrates ``dy/dt = f(y, t, *args)`` with the classical
fourth-order Runge–Kutta scheme and a fixed step, saving the state every
``save_every`` steps. The step count is static, so the whole solve compiles
once and ``jax.vmap`` over initial states or parameters (a grid of models, a
batch of multi-start fits) is free::

    ts, ys = rk4(sir_rhs, y0, dt=0.1, steps=350, save_every=10, args=(beta, D))

:func:`sir_rhs` is the SIR epidemic of D'Amour et al. (2022, their SIR
example), written with a third state, the *cumulative incidence* ``c``, so
that daily new infections ``N (c(t+1) - c(t))`` stay accurate in float32
even when they are a millionth of the population (``s(t) - s(t+1)`` would
lose them to rounding near ``s = 1``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _check_pos_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def rk4_step(f: Callable, y, t, dt, args=()):
    """One classical Runge–Kutta step ``y(t) -> y(t + dt)`` (``y`` any pytree of arrays)."""
    add = lambda a, b, c: jax.tree_util.tree_map(lambda u, v: u + c * v, a, b)
    k1 = f(y, t, *args)
    k2 = f(add(y, k1, dt / 2), t + dt / 2, *args)
    k3 = f(add(y, k2, dt / 2), t + dt / 2, *args)
    k4 = f(add(y, k3, dt), t + dt, *args)
    return jax.tree_util.tree_map(
        lambda y_, a, b, c, d: y_ + dt / 6 * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4
    )


def rk4(f: Callable, y0, *, dt: float, steps: int, save_every: int = 1, t0: float = 0.0, args=()):
    """Integrate ``dy/dt = f(y, t, *args)`` from ``t0`` with ``steps`` RK4 steps of size ``dt``.

    Args:
        f: vector field ``f(y, t, *args) -> dy/dt`` (same pytree structure as ``y``).
        y0: initial state, any pytree of float arrays.
        dt: step size (may be traced).
        steps: number of steps (static Python int, a multiple of ``save_every``).
        save_every: keep one state every this many steps.
        t0: initial time.
        args: extra arguments of ``f`` (may be traced; vmap over them freely).

    Returns:
        ``(ts, ys)``: ``ts`` of shape ``(steps // save_every + 1,)`` and ``ys``
        with a leading axis of the same length (``ys[0] = y0``).

    Raises:
        ValueError: ``steps``/``save_every`` not positive integers, or
            ``steps`` not a multiple of ``save_every``.
    """
    _check_pos_int("steps", steps)
    _check_pos_int("save_every", save_every)
    if steps % save_every:
        raise ValueError(f"steps={steps} must be a multiple of save_every={save_every}")
    if not isinstance(args, tuple):
        raise ValueError(f"args must be a tuple, got {type(args).__name__}")
    n_save = steps // save_every

    t0 = jnp.asarray(t0, dtype=jnp.result_type(float))

    def inner(carry, _):  # time as t0 + n dt (no drift from summing dt)
        y, n = carry
        return (rk4_step(f, y, t0 + n * dt, dt, args), n + 1), None

    def outer(carry, _):
        carry, _ = jax.lax.scan(inner, carry, None, length=save_every)
        return carry, carry

    _, (ys, ns) = jax.lax.scan(outer, (y0, jnp.asarray(0, jnp.int32)), None, length=n_save)
    ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    ts = t0 + dt * jnp.concatenate([jnp.zeros(1, jnp.int32), ns]).astype(t0.dtype)
    return ts, ys


def sir_rhs(y, t, beta, D):
    """SIR vector field on population fractions, with cumulative incidence.

    ``y = (s, i, c)`` of shape ``(..., 3)``; returns ``dy/dt`` of the same shape:

        ds/dt = -beta s i,   di/dt = beta s i - i / D,   dc/dt = beta s i

    (D'Amour et al. 2022, SIR example; ``r = 1 - s - i`` is implied, ``c`` counts
    every infection since ``t = 0``). ``beta``: transmission rate per day; ``D``:
    mean infectious period in days; ``R0 = beta * D``.
    """
    s, i = y[..., 0], y[..., 1]
    new = beta * s * i
    return jnp.stack([-new, new - i / D, new], axis=-1)


def sir_daily_incidence(beta, D, i0, *, days: int, population: float = 1.0, dt: float = 0.1):
    """Expected new infections per day for days ``0 .. days-1`` of an SIR epidemic.

    Starts from ``(s, i, c) = (1 - i0, i0, 0)`` and integrates eq. ``sir_rhs`` with
    RK4 (``dt`` must divide one day). Returns shape ``(days,)``:
    ``population * (c(k + 1) - c(k))``. Scalars in, so vmap over ``(beta, D, i0)``.

    Raises:
        ValueError: ``days`` not a positive int, or ``1 / dt`` not an integer.
    """
    _check_pos_int("days", days)
    per_day = 1.0 / dt
    if abs(per_day - round(per_day)) > 1e-6 or round(per_day) < 1:
        raise ValueError(f"dt must divide one day (1/dt an integer), got dt={dt}")
    per_day = int(round(per_day))
    i0 = jnp.asarray(i0, dtype=jnp.result_type(float))  # float32, or float64 with jax_enable_x64
    y0 = jnp.stack([1.0 - i0, i0, jnp.zeros_like(i0)])
    _, ys = rk4(sir_rhs, y0, dt=dt, steps=days * per_day, save_every=per_day, args=(beta, D))
    return population * jnp.diff(ys[:, 2])
