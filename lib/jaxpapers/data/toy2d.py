"""Boolean and geometric 2-D classification tasks (BLUR's synthetic task family).

Inputs are uniform on ``[-1, 1]^2`` (moons: two noisy half-circles rescaled
into that square); labels are ``0/1``. With ``b0 = x0 > 0`` and ``b1 = x1 > 0``:

=========  ===========================  ============  =====================
name       label                        base rate     separable on corners
=========  ===========================  ============  =====================
xor        b0 != b1                     50 %          no
nxor       b0 == b1                     50 %          no
or         b0 or b1                     75 %          yes
and        b0 and b1                    25 %          yes
nand       not (b0 and b1)              75 %          yes
qand       (x0 < 0) and (x1 > 0)        25 %          yes (the BLUR colab's "nand")
circle     |x| < sqrt(2 / pi)           50 %          no
moons      inner moon                   50 %          almost (~88 %)
=========  ===========================  ============  =====================

"Separable on corners" is the Boolean notion (on ``{-1, 1}^2``). On the
continuous square a quadrant (and, nand, or, qand) is an intersection of two
half-planes: the best single line reaches a balanced accuracy of about 0.90
(moons: about 0.88); xor, nxor and circle need a hidden layer.

Because of the 25/75 base rates, report :func:`balanced_accuracy` (the mean of the
per-class recalls: 0.5 for a constant predictor) rather than plain accuracy.
Everything is pure JAX, so episodes can be sampled inside ``jit``/``vmap``;
:func:`sample_task` takes a traced task index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TASKS = ("xor", "nxor", "or", "and", "nand", "qand", "circle", "moons")
LINEARLY_SEPARABLE = {"or": True, "and": True, "nand": True, "qand": True,
                      "xor": False, "nxor": False, "circle": False, "moons": False}
CIRCLE_RADIUS = float(np.sqrt(2 / np.pi))  # area pi r^2 = half of the square


def _boolean(fn):
    def label(x):
        return fn(x[:, 0] > 0, x[:, 1] > 0)
    return label


_LABELS = {
    "xor": _boolean(lambda a, b: a != b),
    "nxor": _boolean(lambda a, b: a == b),
    "or": _boolean(lambda a, b: a | b),
    "and": _boolean(lambda a, b: a & b),
    "nand": _boolean(lambda a, b: ~(a & b)),
    "qand": _boolean(lambda a, b: (~a) & b),
    "circle": lambda x: jnp.sum(x**2, axis=1) < CIRCLE_RADIUS**2,
}


def label(name: str, x):
    """Labels ``(n,)`` int32 of the boolean/circle task ``name`` at points ``x: (n, 2)``."""
    if name not in _LABELS:
        raise ValueError(f"label() knows {sorted(_LABELS)}; got {name!r} (moons are sampled, see sample())")
    if np.ndim(x) != 2 or np.shape(x)[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {np.shape(x)}")
    return _LABELS[name](x).astype(jnp.int32)


def _moons(key, n, noise=0.1):
    kt, kc, kn = jax.random.split(key, 3)
    t = jax.random.uniform(kt, (n,), maxval=jnp.pi)
    inner = jax.random.bernoulli(kc, 0.5, (n,))
    outer_xy = jnp.stack([jnp.cos(t), jnp.sin(t)], 1)
    inner_xy = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], 1)
    xy = jnp.where(inner[:, None], inner_xy, outer_xy) + noise * jax.random.normal(kn, (n, 2))
    # the two moons span x in [-1, 2], y in [-0.5, 1]: map to roughly [-1, 1]^2
    xy = (xy - jnp.array([0.5, 0.25])) / jnp.array([1.5, 0.75])
    return xy.astype(jnp.float32), inner.astype(jnp.int32)


def sample(name: str, key, n: int):
    """``n`` points of task ``name``: ``(x: (n, 2) float32, y: (n,) int32 in {0, 1})``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if name == "moons":
        return _moons(key, int(n))
    x = jax.random.uniform(key, (int(n), 2), minval=-1.0, maxval=1.0)
    return x, label(name, x)


def sample_task(names, index, key, n: int):
    """Like :func:`sample` for ``names[index]`` where ``index`` may be traced (``lax.switch``)."""
    names = tuple(names)
    if not names:
        raise ValueError("names must list at least one task")
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return jax.lax.switch(index, [lambda k, nm=nm: sample(nm, k, n) for nm in names], key)


def balanced_accuracy(pred, y, num_classes: int = 2):
    """Mean over classes of the recall ``P(pred = c | y = c)``; classes absent from ``y`` are skipped.

    ``pred, y: (..., n)`` integer labels; returns shape ``(...)``. Jittable.
    """
    if np.shape(pred) != np.shape(y):
        raise ValueError(f"pred and y must have the same shape, got {np.shape(pred)} and {np.shape(y)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    onehot = jax.nn.one_hot(y, num_classes)                      # (..., n, C)
    hits = jnp.sum(onehot * (pred == y)[..., None], axis=-2)     # (..., C)
    counts = jnp.sum(onehot, axis=-2)
    present = counts > 0
    recall = jnp.where(present, hits / jnp.maximum(counts, 1), 0.0)
    return jnp.sum(recall, -1) / jnp.maximum(jnp.sum(present, -1), 1)
