"""GradMax for convolutions :cite:`evci2022gradmax`: the exact growth matrix of a conv pair.

The grown pair is ``conv_in`` (``k_in × k_in``, ``C_in -> H``, stride ``s``) →
``relu1`` → ``conv_out`` (``k_out × k_out``, ``H -> C_out``, stride 1), both with
symmetric zero padding ``k // 2`` (odd ``k``), images ``NHWC``, kernels ``HWIO``.
A new hidden channel ``j`` has an incoming kernel ``A`` (``k_in, k_in, C_in``,
zero at growth) and an outgoing kernel ``B`` (``k_out, k_out, C_out``). With
``δ = ∂L/∂z`` at ``conv_out``'s output, ``p`` a position of the hidden map and
``P_x(p)`` the ``k_in² C_in`` input patch that ``conv_in`` reads at ``p``,

    ∂L/∂h_j(p) = Σ_v δ(p + r - v) · B(v)      (r = k_out // 2; δ = 0 outside the map)
    ∂L/∂A      = f'(0) Σ_{b, p} P_x(p) ⊗ ∂L/∂h_j(p)  =  f'(0) · M · vec(B),

    M = Σ_{b, p ∈ hidden map} P_x(p) G_δ(p)ᵀ,    G_δ(p)[v, o] = δ(p + r - v, o)      (eq. C1)

``M`` has shape ``(k_in² C_in, k_out² C_out)``; rows are ordered ``(dy, dx, c_in)``
and columns ``(dy, dx, c_out)``, so they match ``A.reshape(-1)`` and
``B.reshape(-1)``. ``G_δ`` is the ``k_out × k_out`` patch of ``δ`` read with both
offsets reversed. Eq. (C1) is **exact**, borders included: the sum runs over the
hidden map only, and every term the zero padding removes is absent. It is the
gradient of a zero "skip" map from the block's input to its output through a
zero-width unit (a full matrix ``S`` acting as ``z += col2im(P_x · S)``), written
in closed form; the tests compare it with autodiff through a grown network, with
finite differences and with an explicit loop.

The authors' code instead trains an auxiliary conv with the *combined* kernel
``k_in + k_out - 1`` from the input straight to the output and rearranges its
gradient (:func:`combined_kernel_gradient_matrix`). That sum also runs over
hidden positions *outside* the map (which are padding in the real network), so it
is off near borders: the smaller the map, the larger the error.

Growth writes into padded slots (``lax.dynamic_update_slice`` at a traced offset),
exactly like the dense :func:`jaxpapers.growth.grow_dense`: the width never changes
shape and nothing recompiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpapers import growth, resnet
from jaxpapers._validate import positive_int as _pos_int

__all__ = [
    "conv2d", "conv_patches", "conv_gradient_matrix", "combined_kernel_gradient_matrix",
    "init_padded_conv_pair", "conv_pair_apply", "mean_active_kernel_norm", "conv_growth_directions",
    "grow_conv", "conv_slot_grad_norm",
]


def _odd_k(name, k):
    _pos_int(name, k)
    if k % 2 == 0:
        raise ValueError(f"{name} must be a positive odd integer, got {k!r}")


def _out_size(n, k, stride):
    return (n + 2 * (k // 2) - k) // stride + 1


# --------------------------------------------------------------------------- convolution helpers
def conv2d(x, w, stride: int = 1):
    """Cross-correlation ``x: (B, H, W, C_in)`` * ``w: (k, k, C_in, C_out)``, padding ``k // 2``, odd ``k``.

    Output ``(B, ⌊(H - 1) / s⌋ + 1, ⌊(W - 1) / s⌋ + 1, C_out)`` (``H`` for stride 1).
    """
    if w.ndim == 4:
        _odd_k("kernel size", w.shape[0])
    return resnet.conv2d(x, w, stride)  # checks the shapes and the stride


def conv_patches(x, k: int, stride: int = 1):
    """Input patches of :func:`conv2d`: ``x: (B, H, W, C)`` -> ``(B, H', W', k·k·C)``, ordered ``(dy, dx, c)``.

    ``conv2d(x, w, s) == conv_patches(x, k, s) @ w.reshape(k·k·C, C_out)``.
    """
    _odd_k("k", k)
    _pos_int("stride", stride)
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), got {x.shape}")
    p = k // 2
    ho, wo = _out_size(x.shape[1], k, stride), _out_size(x.shape[2], k, stride)
    xp = jnp.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    cols = [xp[:, dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride, :]
            for dy in range(k) for dx in range(k)]
    return jnp.concatenate(cols, axis=-1)


# --------------------------------------------------------------------------- the growth matrix
def _check_pair(x, delta, k_in, k_out, stride):
    _odd_k("k_in", k_in)
    _odd_k("k_out", k_out)
    _pos_int("stride", stride)
    if x.ndim != 4 or delta.ndim != 4:
        raise ValueError(f"x and delta must be (B, H, W, C) arrays, got {x.shape} and {delta.shape}")
    if x.shape[0] != delta.shape[0]:
        raise ValueError(f"x and delta must have the same batch, got {x.shape[0]} and {delta.shape[0]}")
    hidden = (_out_size(x.shape[1], k_in, stride), _out_size(x.shape[2], k_in, stride))
    if delta.shape[1:3] != hidden:
        raise ValueError(f"delta's map {delta.shape[1:3]} must equal the hidden map {hidden} "
                         f"(conv_in with k_in={k_in}, stride={stride} on {x.shape[1:3]}; conv_out has stride 1)")


def conv_gradient_matrix(x, delta, k_in: int, k_out: int, stride: int = 1):
    """Exact GradMax matrix of a conv pair (eq. C1).

    Args:
        x: ``(B, H, W, C_in)``, the input of ``conv_in``.
        delta: ``(B, H', W', C_out)``, ``∂L/∂z`` at ``conv_out``'s output (for the loss
            as used: a batch mean is already in it); ``H' = ⌊(H - 1)/stride⌋ + 1``.
        k_in, k_out: odd kernel sizes of ``conv_in`` and ``conv_out``.
        stride: stride of ``conv_in`` (``conv_out`` has stride 1).

    Returns:
        ``M: (k_in² C_in, k_out² C_out)`` with ``∂L/∂A = f'(0) · M · vec(B)`` for a new
        channel with zero incoming kernel ``A`` and outgoing kernel ``B``.

    Raises:
        ValueError: even or non-positive kernel sizes, bad stride, or shapes that do
            not fit together.
    """
    x, delta = jnp.asarray(x), jnp.asarray(delta)
    _check_pair(x, delta, k_in, k_out, stride)
    px = conv_patches(x, k_in, stride)                                   # (B, H', W', k_in² C_in)
    b, h, w, c_out = delta.shape
    pd = conv_patches(delta, k_out, 1).reshape(b, h, w, k_out, k_out, c_out)
    pd = pd[:, :, :, ::-1, ::-1, :].reshape(b, h, w, -1)                 # G_δ(p)[v] = δ(p + r - v)
    return jnp.einsum("bhwi,bhwo->io", px, pd, precision=lax.Precision.HIGHEST)


def combined_kernel_gradient_matrix(x, delta, k_in: int, k_out: int):
    """The authors' approximation (stride 1): gradient of a zero ``(k_in + k_out - 1)``-kernel skip conv.

    The auxiliary conv maps ``x`` straight to ``z``; its gradient
    ``Γ[t] = Σ_q P_x^{K}(q)[t] δ(q)`` (``K = k_in + k_out - 1``) is rearranged as
    ``M̃[(u, c), (v, o)] = Γ[u + v, c, o]`` (offsets per axis). This equals eq. (C1)
    with the sum over hidden positions extended beyond the map, so it differs from
    :func:`conv_gradient_matrix` near the borders. Same shapes and errors as that
    function (stride 1 only).
    """
    x, delta = jnp.asarray(x), jnp.asarray(delta)
    _check_pair(x, delta, k_in, k_out, 1)
    kk = k_in + k_out - 1
    gam = jnp.einsum("bhwi,bhwo->io", conv_patches(x, kk, 1), delta, precision=lax.Precision.HIGHEST)
    gam = gam.reshape(kk, kk, x.shape[-1], delta.shape[-1])
    u = np.arange(k_in)[:, None] + np.arange(k_out)[None, :]             # (k_in, k_out): u + v
    m = gam[u[:, None, :, None], u[None, :, None, :]]                     # (uy, ux, vy, vx, C_in, C_out)
    m = m.transpose(0, 1, 4, 2, 3, 5)                                    # (uy, ux, c, vy, vx, o)
    return m.reshape(k_in * k_in * x.shape[-1], k_out * k_out * delta.shape[-1])


# --------------------------------------------------------------------------- a padded conv pair
def init_padded_conv_pair(key, c_in: int, width: int, max_width: int, c_out: int, k: int = 3,
                          dtype=jnp.float32):
    """``{"w_in": (k, k, c_in, max_width), "w_out": (k, k, max_width, c_out)}``, only ``width`` channels non-zero.

    He-normal weights (fan-in of the *active* layer); padded slots are zero.
    """
    for name, v in (("c_in", c_in), ("width", width), ("max_width", max_width), ("c_out", c_out)):
        _pos_int(name, v)
    _odd_k("k", k)
    if width > max_width:
        raise ValueError(f"width={width} must not exceed max_width={max_width}")
    k1, k2 = jax.random.split(key)
    mask = (jnp.arange(max_width) < width).astype(dtype)
    w_in = jax.random.normal(k1, (k, k, c_in, max_width), dtype) * np.sqrt(2.0 / (k * k * c_in))
    w_out = jax.random.normal(k2, (k, k, max_width, c_out), dtype) * np.sqrt(2.0 / (k * k * width))
    return {"w_in": w_in * mask, "w_out": w_out * mask[:, None]}


def conv_pair_apply(params, x, act=growth.relu1, stride: int = 1):
    """``z = conv(act(conv(x, w_in, stride)), w_out)``: ``(B, H, W, C_in) -> (B, H', W', C_out)``."""
    return conv2d(act(conv2d(x, params["w_in"], stride)), params["w_out"])


# --------------------------------------------------------------------------- directions and growth
def mean_active_kernel_norm(w_out, active):
    """Mean L2 norm of the outgoing kernels ``w_out[:, :, j, :]`` of the first ``active`` channels.

    ``w_out: (k, k, H, C_out)``; ``active`` may be traced. The authors' ``mean_norm``.
    """
    w_out = jnp.asarray(w_out)
    if w_out.ndim != 4:
        raise ValueError(f"w_out must be (k, k, H, C_out), got shape {w_out.shape}")
    norms = jnp.sqrt(jnp.sum(jnp.square(w_out), axis=(0, 1, 3)))
    mask = jnp.arange(w_out.shape[2]) < active
    return jnp.sum(jnp.where(mask, norms, 0.0)) / jnp.maximum(active, 1)


def conv_growth_directions(m, w_out, active, k: int, scale=0.5, kind: str = "gradmax", key=None):
    """Outgoing kernels ``(k, k_out, k_out, C_out)`` for ``k`` new channels, norm ``scale × mean norm``.

    ``kind="gradmax"``: top-``k`` right singular vectors of ``m`` (eq. 3 of the paper,
    deterministic sign, see :func:`jaxpapers.growth.topk_directions`);
    ``"uniform"`` (the official random, U[0, 1) entries) or ``"gaussian"``: random
    unit directions from ``key``. ``m: (fan_in, k_out² C_out)``, ``w_out: (k_out, k_out, H, C_out)``.
    """
    w_out = jnp.asarray(w_out)
    if w_out.ndim != 4 or w_out.shape[0] != w_out.shape[1]:
        raise ValueError(f"w_out must be (k, k, H, C_out), got shape {w_out.shape}")
    d_out = w_out.shape[0] * w_out.shape[1] * w_out.shape[3]
    if jnp.ndim(m) != 2 or jnp.shape(m)[1] != d_out:
        raise ValueError(f"m must be (fan_in, {d_out}) for w_out of shape {w_out.shape}, got {jnp.shape(m)}")
    if kind == "gradmax":
        dirs, _ = growth.topk_directions(m, k)
    elif kind in ("uniform", "gaussian"):
        if key is None:
            raise ValueError(f"kind={kind!r} needs a PRNG key")
        dirs = growth.random_directions(key, k, d_out, kind)
    else:
        raise ValueError(f"kind must be 'gradmax', 'uniform' or 'gaussian', got {kind!r}")
    c = scale * mean_active_kernel_norm(w_out, active)
    return (dirs * c).reshape(k, w_out.shape[0], w_out.shape[1], w_out.shape[3])


def grow_conv(params, active, out_kernels, in_kernels=None, w_in: str = "w_in", w_out: str = "w_out"):
    """Write ``k`` new channels into the padded slots ``active … active+k-1`` of a conv pair.

    Args:
        params: dict holding ``params[w_in]: (k_in, k_in, C_in, H)`` and
            ``params[w_out]: (k_out, k_out, H, C_out)`` (other entries are kept).
        active: current width (int or traced int32 scalar).
        out_kernels: ``(k, k_out, k_out, C_out)`` new outgoing kernels.
        in_kernels: ``(k, k_in, k_in, C_in)`` new incoming kernels, or ``None`` to keep
            them zero (function-preserving growth).
        w_in, w_out: the keys of the two kernels in ``params``.

    Returns ``(params, active + k)``; the caller keeps ``active + k <= H``.
    """
    a_in, a_out = params[w_in], params[w_out]
    out_kernels = jnp.asarray(out_kernels)
    if out_kernels.ndim != 4 or out_kernels.shape[1:] != (a_out.shape[0], a_out.shape[1], a_out.shape[3]):
        raise ValueError(f"out_kernels must be (k, {a_out.shape[0]}, {a_out.shape[1]}, {a_out.shape[3]}), "
                         f"got shape {out_kernels.shape}")
    k = out_kernels.shape[0]
    if k > a_out.shape[2]:
        raise ValueError(f"cannot grow {k} channels into a padded width of {a_out.shape[2]}")
    new = dict(params)
    new[w_out] = growth.write_slots(a_out, out_kernels.transpose(1, 2, 0, 3), 2, active)
    if in_kernels is not None:
        in_kernels = jnp.asarray(in_kernels)
        want = (k, a_in.shape[0], a_in.shape[1], a_in.shape[2])
        if in_kernels.shape != want:
            raise ValueError(f"in_kernels must be {want}, got shape {in_kernels.shape}")
        new[w_in] = growth.write_slots(a_in, in_kernels.transpose(1, 2, 3, 0), 3, active)
    return new, jnp.asarray(active, jnp.int32) + k


def conv_slot_grad_norm(grad_w_in, active, k: int):
    """Frobenius norm of ``grad_w_in[..., active:active+k]`` (``grad_w_in: (k_in, k_in, C_in, H)``).

    The GradMax objective for convolutions: the new channels' incoming-kernel gradient.
    """
    grad_w_in = jnp.asarray(grad_w_in)
    if grad_w_in.ndim != 4:
        raise ValueError(f"grad_w_in must be (k, k, C_in, H), got shape {grad_w_in.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= grad_w_in.shape[3]:
        raise ValueError(f"k must be an integer in 1..{grad_w_in.shape[3]}, got {k!r}")
    return jnp.linalg.norm(growth.read_slots(grad_w_in, 3, active, k))
