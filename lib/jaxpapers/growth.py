"""Growing networks with gradient information: GradMax :cite:`evci2022gradmax`.

A hidden layer is grown by ``k`` new neurons whose **incoming** weights and bias
are zero (so the network function is unchanged) and whose **outgoing** weights
``W_out^new`` (``k × d_out``) are chosen to maximise the gradient norm of the new
incoming weights. With ``h`` the layer's input (``batch × d_in``) and
``δ = ∂L/∂z`` the gradient at the next pre-activation (``batch × d_out``),

    ∂L/∂W_in^new = f'(0) · M · W_out^newᵀ,    M = hᵀ δ    (d_in × d_out)      (eq. 1)

and ``M`` is the gradient of a zero "skip" matrix from ``h`` to ``z`` (eq. 2).
Under ``‖w_j‖ = c`` the maximiser is ``w_j = c · v_j``, the top right singular
vectors of ``M`` (eq. 3); the top neuron's gradient norm is ``f'(0) · c · σ₁(M)``.

Implementation choice: **padded fixed-width parameters**. Arrays are allocated at
the final width; unused slots are all zero. An all-zero neuron is a fixed point of
gradient descent when ``f(0) = 0`` (its incoming gradient is ``f'(0) M · 0 = 0``
and its outgoing gradient is ``h_new = 0``), so padding is exactly equivalent to
resizing, optimizer state of new slots starts at zero (the authors'
``carry_optimizer=True``) and growth -- a ``dynamic_update_slice`` at a traced
offset -- never recompiles.

Parameters of a one-hidden-layer MLP are the dict ``{"w1": (d_in, H), "b1": (H,),
"w2": (H, d_out), "b2": (d_out,)}`` with ``H`` the maximal width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "relu_d0", "relu1", "init_padded_mlp", "mlp_apply", "dense_gradient_matrix", "skip_gradient_matrix",
    "exact_growth_matrix", "topk_directions", "random_directions", "mean_active_norm", "scale_directions",
    "grow_dense", "slot_grad_norm", "growth_candidates", "grow_by_method", "METHOD_GRADMAX", "METHOD_UNIFORM",
    "METHOD_GAUSSIAN", "METHOD_NONE",
]


# --------------------------------------------------------------------------- activations
def relu_d0(x, d0=1.0):
    """ReLU whose derivative at exactly 0 is ``d0`` (1 for ``x > 0``, 0 for ``x < 0``).

    ``jax.nn.relu`` has derivative 0 at 0, so a neuron grown with zero incoming
    weights gets gradient exactly 0 and stays dead; ``jnp.maximum(x, 0)`` splits the
    tie and gives 0.5. ``d0`` may be a traced scalar (vmap over it).
    The value is ``max(x, 0)`` for every ``d0``.
    """
    pos = jnp.where(x > 0, x, jnp.zeros_like(x))
    at0 = jnp.where(x == 0, x - lax.stop_gradient(x), jnp.zeros_like(x))  # value 0, slope 1 at x == 0
    return pos + d0 * at0


def relu1(x):
    """``relu1`` of the official code: ``max(x, 0)`` with derivative **1** at 0."""
    return relu_d0(x, 1.0)


# --------------------------------------------------------------------------- padded MLP
def init_padded_mlp(key, d_in: int, width: int, max_width: int, d_out: int, *, init: str = "glorot",
                    bias: bool = True, dtype=jnp.float32):
    """One-hidden-layer MLP at ``max_width`` with only the first ``width`` neurons non-zero.

    ``init``: ``"glorot"`` (uniform, fan-in/out of the *active* layer, Keras's default)
    or ``"uniform"`` (U[-1, 1], the authors' teacher). Biases are zero (and stay zero
    when ``bias=False``: the dict then has no ``b1``/``b2``).

    Returns ``{"w1": (d_in, max_width), "b1": (max_width,), "w2": (max_width, d_out), "b2": (d_out,)}``.
    """
    for name, v in (("d_in", d_in), ("width", width), ("max_width", max_width), ("d_out", d_out)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if width > max_width:
        raise ValueError(f"width={width} must not exceed max_width={max_width}")
    if init not in ("glorot", "uniform"):
        raise ValueError(f"init must be 'glorot' or 'uniform', got {init!r}")
    k1, k2 = jax.random.split(key)

    def draw(k, shape, fan_in, fan_out):
        lim = 1.0 if init == "uniform" else float(np.sqrt(6.0 / (fan_in + fan_out)))
        return jax.random.uniform(k, shape, dtype, -lim, lim)

    mask = (jnp.arange(max_width) < width).astype(dtype)
    params = {
        "w1": draw(k1, (d_in, max_width), d_in, width) * mask[None, :],
        "w2": draw(k2, (max_width, d_out), width, d_out) * mask[:, None],
    }
    if bias:
        params["b1"] = jnp.zeros((max_width,), dtype)
        params["b2"] = jnp.zeros((d_out,), dtype)
    return params


def mlp_apply(params, x, act=relu1, skip=None):
    """Forward pass ``z = act(x W1 + b1) W2 + b2 (+ x S)``; ``x: (batch, d_in)`` -> ``(batch, d_out)``.

    ``skip`` (``(d_in, d_out)`` or None) is the auxiliary zero skip connection whose
    gradient at 0 is the GradMax matrix M (eq. 2).
    """
    h = act(x @ params["w1"] + params.get("b1", 0.0))
    z = h @ params["w2"] + params.get("b2", 0.0)
    if skip is not None:
        z = z + x @ skip
    return z


# --------------------------------------------------------------------------- the gradient matrix
def dense_gradient_matrix(h, delta):
    """Closed-form M = hᵀ δ (eq. 1): ``h: (batch, d_in)``, ``delta: (batch, d_out)`` -> ``(d_in, d_out)``.

    ``delta`` is ∂L/∂z for the *loss as used* (so a mean over the batch is already in it).
    """
    h, delta = jnp.asarray(h), jnp.asarray(delta)
    if h.ndim != 2 or delta.ndim != 2 or h.shape[0] != delta.shape[0]:
        raise ValueError(f"h and delta must be (batch, d) arrays with the same batch, got {h.shape}, {delta.shape}")
    return h.T @ delta


def skip_gradient_matrix(loss_of_skip, d_in: int, d_out: int, dtype=jnp.float32):
    """M as the gradient of a zero skip matrix (eq. 2): ``∇_S loss_of_skip(S)`` at ``S = 0``.

    ``loss_of_skip(S)`` must add ``h @ S`` (``S: (d_in, d_out)``) to the next layer's
    pre-activation. Returns ``(d_in, d_out)``.
    """
    if not callable(loss_of_skip):
        raise ValueError("loss_of_skip must be callable")
    return jax.grad(loss_of_skip)(jnp.zeros((d_in, d_out), dtype))


def exact_growth_matrix(grad_in_of_out, d_out: int, dtype=jnp.float32):
    """Exact linear map ``w ↦ ∂L/∂w_in^new`` as a matrix, for any architecture.

    ``grad_in_of_out(w)`` returns the (flattened) gradient of the new neuron's incoming
    weights when its outgoing weights are ``w`` (``(d_out,)``) and its incoming weights
    are 0. That map is linear (eq. 1), so its Jacobian ``(fan_in, d_out)`` *is* the
    growth matrix ``f'(0) M``; for convolutions this avoids the combined-kernel
    approximation at borders.
    """
    if not callable(grad_in_of_out):
        raise ValueError("grad_in_of_out must be callable")
    jac = jax.jacfwd(lambda w: jnp.ravel(grad_in_of_out(w)))(jnp.zeros((d_out,), dtype))
    return jac


# --------------------------------------------------------------------------- directions
def _sign_fix(v):
    """Flip each row of ``v`` (``(k, d)``) so that its largest-|.| entry is positive."""
    idx = jnp.argmax(jnp.abs(v), axis=1)
    s = jnp.sign(jnp.take_along_axis(v, idx[:, None], axis=1))
    return v * jnp.where(s == 0, 1.0, s)


def topk_directions(m, k: int):
    """Top-``k`` right singular vectors of ``m`` (eq. 3), as unit rows ``(k, d_out)``, and ``σ (k,)``.

    The sign of each row is fixed (largest |component| positive) so results agree
    across LAPACK/cuSOLVER. When ``k`` exceeds ``rank(m)`` the extra rows are the
    remaining right singular vectors of the full SVD (orthonormal, σ = 0): any unit
    vector in the null space is an equally good (zero-gradient) choice.

    Raises:
        ValueError: ``m`` not 2-D, or ``k`` not in ``1 … d_out``.
    """
    m = jnp.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"m must be a 2-D (d_in, d_out) matrix, got shape {m.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= m.shape[1]:
        raise ValueError(f"k must be an integer in 1..d_out={m.shape[1]}, got {k!r}")
    _, s, vt = jnp.linalg.svd(m, full_matrices=True)
    s_full = jnp.zeros((m.shape[1],), m.dtype).at[: s.shape[0]].set(s)
    return _sign_fix(vt[:k]), s_full[:k]


def random_directions(key, k: int, d_out: int, kind: str = "uniform", dtype=jnp.float32):
    """``k`` random unit directions ``(k, d_out)``: the baselines.

    ``kind="uniform"``: U[0, 1) entries (all positive), the official ``AddRandom``;
    ``kind="gaussian"``: N(0, 1) entries (isotropic). Rows are L2-normalised.
    """
    if kind not in ("uniform", "gaussian"):
        raise ValueError(f"kind must be 'uniform' or 'gaussian', got {kind!r}")
    for name, v in (("k", k), ("d_out", d_out)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    draw = jax.random.uniform if kind == "uniform" else jax.random.normal
    v = draw(key, (k, d_out), dtype)
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


def mean_active_norm(w_out, active):
    """Mean L2 norm of the first ``active`` rows of ``w_out`` (``(H, d_out)``); ``active`` may be traced."""
    w_out = jnp.asarray(w_out)
    if w_out.ndim != 2:
        raise ValueError(f"w_out must be (H, d_out), got shape {w_out.shape}")
    mask = jnp.arange(w_out.shape[0]) < active
    norms = jnp.linalg.norm(w_out, axis=1)
    return jnp.sum(jnp.where(mask, norms, 0.0)) / jnp.maximum(active, 1)


def scale_directions(dirs, w_out, active, scale=0.5):
    """Rows of ``dirs`` (``(k, d_out)``) rescaled to norm ``scale × mean_active_norm(w_out, active)``.

    The official ``scale_method='mean_norm'``; ``scale`` may be traced.
    """
    dirs = jnp.asarray(dirs)
    if dirs.ndim != 2 or dirs.shape[1] != jnp.shape(w_out)[1]:
        raise ValueError(f"dirs must be (k, d_out={jnp.shape(w_out)[1]}), got shape {dirs.shape}")
    unit = dirs / jnp.maximum(jnp.linalg.norm(dirs, axis=1, keepdims=True), 1e-30)
    return unit * (scale * mean_active_norm(w_out, active))


# --------------------------------------------------------------------------- growth
def write_slots(a, values, axis: int, active):
    """``a`` with ``values`` written at positions ``active … active+k-1`` along ``axis``.

    ``values`` has ``a``'s shape except ``k`` along ``axis``. ``active`` may be traced
    (``lax.dynamic_update_slice``): growing inside ``jit``/``scan``/``vmap`` never recompiles.
    """
    start = [jnp.zeros((), jnp.int32)] * a.ndim
    start[axis] = jnp.asarray(active, jnp.int32)
    return lax.dynamic_update_slice(a, values.astype(a.dtype), start)


def read_slots(a, axis: int, active, k: int):
    """Positions ``active … active+k-1`` of ``a`` along ``axis`` (``active`` may be traced)."""
    start = [jnp.zeros((), jnp.int32)] * a.ndim
    start[axis] = jnp.asarray(active, jnp.int32)
    return lax.dynamic_slice(a, start, a.shape[:axis] + (k,) + a.shape[axis + 1:])


def grow_dense(params, active, out_rows, in_cols=None):
    """Write ``k`` new neurons into the padded slots ``active … active+k-1``.

    Args:
        params: padded MLP dict (see :func:`init_padded_mlp`).
        active: current width (int or traced int32 scalar).
        out_rows: new outgoing weights ``(k, d_out)`` -> rows of ``w2``.
        in_cols: new incoming weights ``(d_in, k)`` -> columns of ``w1``; ``None``
            keeps them zero (function-preserving growth, eq. 1).

    Returns ``(params, active + k)``. Uses ``lax.dynamic_update_slice`` so ``active``
    can be traced: growth inside ``jit``/``scan``/``vmap`` never recompiles. The
    caller must keep ``active + k <= H`` (not checkable on traced values).
    """
    out_rows = jnp.asarray(out_rows)
    w1, w2 = params["w1"], params["w2"]
    if out_rows.ndim != 2 or out_rows.shape[1] != w2.shape[1]:
        raise ValueError(f"out_rows must be (k, d_out={w2.shape[1]}), got shape {out_rows.shape}")
    k = out_rows.shape[0]
    if k > w2.shape[0]:
        raise ValueError(f"cannot grow {k} neurons into a padded width of {w2.shape[0]}")
    new = dict(params)
    new["w2"] = write_slots(w2, out_rows, 0, active)
    if in_cols is not None:
        in_cols = jnp.asarray(in_cols)
        if in_cols.shape != (w1.shape[0], k):
            raise ValueError(f"in_cols must be (d_in={w1.shape[0]}, k={k}), got shape {in_cols.shape}")
        new["w1"] = write_slots(w1, in_cols, 1, active)
    return new, jnp.asarray(active, jnp.int32) + k


def slot_grad_norm(grad_w1, active, k: int):
    """Frobenius norm of columns ``active … active+k-1`` of ``grad_w1`` (``(d_in, H)``).

    The GradMax objective: the gradient norm of the new neurons' incoming weights.
    """
    grad_w1 = jnp.asarray(grad_w1)
    if grad_w1.ndim != 2:
        raise ValueError(f"grad_w1 must be (d_in, H), got shape {grad_w1.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= grad_w1.shape[1]:
        raise ValueError(f"k must be an integer in 1..{grad_w1.shape[1]}, got {k!r}")
    return jnp.linalg.norm(read_slots(grad_w1, 1, active, k))


# --------------------------------------------------------------------------- methods
#: Method indices of :func:`grow_by_method` (an integer, so that one compiled function serves every method).
METHOD_GRADMAX, METHOD_UNIFORM, METHOD_GAUSSIAN, METHOD_NONE = 0, 1, 2, 3


def growth_candidates(m, w_out, active, key, k: int, scale, n_draws: int):
    """Every candidate growth at one checkpoint, scaled to ``scale × mean_active_norm(w_out, active)``.

    Args:
        m: the growth matrix ``M`` ``(d_in, d_out)`` (eq. 2).
        w_out: the padded outgoing weights ``(H, d_out)`` (for the scale).
        active: current width (may be traced).
        key: PRNG key of the random draws.
        k: neurons per growth.
        scale: the ``mean_norm`` scale (may be traced).
        n_draws: random draws of each kind.

    Returns:
        ``(top, uniform, gaussian, sigma)``: GradMax's rows ``(k, d_out)``, ``n_draws`` uniform
        and ``n_draws`` Gaussian draws ``(n_draws, k, d_out)``, and the top-``k`` singular values.

    Raises:
        ValueError: ``n_draws`` not a positive integer (and as :func:`topk_directions`).
    """
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    m = jnp.asarray(m)
    top, sigma = topk_directions(m, k)
    d_out = m.shape[1]
    ku, kg = jax.random.split(key)
    uni = jax.vmap(lambda kk: random_directions(kk, k, d_out, "uniform"))(jax.random.split(ku, n_draws))
    gau = jax.vmap(lambda kk: random_directions(kk, k, d_out, "gaussian"))(jax.random.split(kg, n_draws))

    def sc(d):
        return scale_directions(d, w_out, active, scale)

    return sc(top), jax.vmap(sc)(uni), jax.vmap(sc)(gau), sigma


def grow_by_method(params, active, m, key, method, k: int, scale, n_draws: int = 1):
    """Grow ``params`` by ``k`` neurons with the method index ``method`` (may be traced).

    ``METHOD_GRADMAX`` (0) writes GradMax's rows, ``METHOD_UNIFORM`` (1) and ``METHOD_GAUSSIAN``
    (2) the first random draw of :func:`growth_candidates`, and any index ``>= METHOD_NONE``
    (3) leaves the network as it is (a fixed-width baseline). Returns ``(params, active)``.
    """
    top, uni, gau, _ = growth_candidates(m, params["w2"], active, key, k, scale, n_draws)
    rows = jnp.stack([top, uni[0], gau[0]])[jnp.minimum(method, METHOD_GAUSSIAN)]
    grown, new_active = grow_dense(params, active, rows)
    keep = method >= METHOD_NONE
    grown = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), params, grown)
    return grown, jnp.where(keep, jnp.asarray(active, jnp.int32), new_active)
