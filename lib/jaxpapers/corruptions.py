"""Procedural stress tests: ImageNet-C-style image corruptions, pure ``jnp`` (jit/vmap-able).

D'Amour et al. (2022) stress-test seed ensembles on corrupted images (ImageNet-C,
CIFAR-10-C: noise, blur, contrast, pixelate, ...). This module generates such
corruptions on the fly, for any image size, so no corrupted dataset is downloaded.

Images are float arrays in ``[0, 1]`` of shape ``(..., H, W)`` (put colour channels
*before* the two spatial axes: ``(n, 3, 32, 32)``). Every corruption returns the same
shape, clipped to ``[0, 1]``. Numeric strengths (``sigma``, ``factor``, ``dx``,
``degrees`` ...) may be traced, so ``jax.vmap`` runs a sweep of strengths at once;
output sizes (``pixelate``'s ``size``, the blur ``radius``) are static.

:data:`SEVERITIES` fixes five levels per corruption, relative to the image size
where that matters (a shift of 1/8 of the width is 1 pixel on 8×8 digits and 4
pixels on 32×32 CIFAR); :func:`corrupt` applies ``name`` at ``severity`` 1–5 and
:func:`severity_sweep` all five severities at once (one compile per corruption).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def _check_images(x):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"images must have shape (..., H, W), got {x.shape}")
    return x


def _clip(x):
    return jnp.clip(x, 0.0, 1.0)


def gaussian_noise(key, x, sigma):
    """Add i.i.d. ``N(0, sigma^2)`` noise to every pixel."""
    x = _check_images(x)
    return _clip(x + sigma * jax.random.normal(key, x.shape, x.dtype))


def salt_and_pepper(key, x, amount):
    """Set a random fraction ``amount`` of pixels to 0 or 1 (half each on average)."""
    x = _check_images(x)
    k1, k2 = jax.random.split(key)
    hit = jax.random.uniform(k1, x.shape) < amount
    salt = jax.random.bernoulli(k2, 0.5, x.shape).astype(x.dtype)
    return jnp.where(hit, salt, x)


def contrast(x, factor):
    """Scale each image's deviations from its own mean by ``factor`` (< 1 lowers contrast)."""
    x = _check_images(x)
    mean = jnp.mean(x, axis=(-2, -1), keepdims=True)
    return _clip(mean + factor * (x - mean))


def brightness(x, delta):
    """Add ``delta`` to every pixel."""
    return _clip(_check_images(x) + delta)


def gaussian_kernel(sigma, radius: int):
    """Normalised 1-D Gaussian weights on ``-radius .. radius`` (``sigma`` may be traced)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ValueError(f"radius must be a positive integer, got {radius!r}")
    t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    w = jnp.exp(-0.5 * (t / jnp.maximum(sigma, 1e-6)) ** 2)
    return w / jnp.sum(w)


def gaussian_blur(x, sigma, *, radius: int | None = None):
    """Separable Gaussian blur of standard deviation ``sigma`` pixels (edge-replicating borders).

    ``radius`` (static) is the kernel half-width; default ``max(1, H // 4)``, enough
    for ``sigma`` up to about ``radius / 2``.
    """
    x = _check_images(x)
    H, W = x.shape[-2:]
    radius = max(1, H // 4) if radius is None else radius
    k = gaussian_kernel(sigma, radius)
    pad = [(0, 0)] * (x.ndim - 2) + [(radius, radius), (radius, radius)]
    xp = jnp.pad(x, pad, mode="edge")
    rows = sum(k[j] * xp[..., j:j + H, :] for j in range(2 * radius + 1))
    return _clip(sum(k[j] * rows[..., :, j:j + W] for j in range(2 * radius + 1)))


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` averaging weights: output cell ``i`` covers ``[i, i+1) * n_in / n_out``."""
    for name, v in (("n_in", n_in), ("n_out", n_out)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    edges = np.arange(n_out + 1) * n_in / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def pixelate(x, size: int):
    """Average-pool each image to ``size × size`` cells, then blow it back up (nearest)."""
    x = _check_images(x)
    H, W = x.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= min(H, W):
        raise ValueError(f"size must be an int in [1, {min(H, W)}], got {size!r}")
    ah, aw = jnp.asarray(area_matrix(H, size)), jnp.asarray(area_matrix(W, size))
    small = jnp.einsum("ih,...hw,jw->...ij", ah, x, aw)
    uh = jnp.asarray(np.minimum(np.arange(H) * size // H, size - 1))
    uw = jnp.asarray(np.minimum(np.arange(W) * size // W, size - 1))
    return small[..., uh, :][..., :, uw]


def _warp(x, src_rows, src_cols):
    """Sample every image at ``(src_rows, src_cols)`` (each ``(H, W)``), bilinear, zeros outside."""
    H, W = x.shape[-2:]
    flat = x.reshape((-1, H, W))
    f = lambda im: jax.scipy.ndimage.map_coordinates(im, [src_rows, src_cols], order=1, mode="constant", cval=0.0)
    return jax.vmap(f)(flat).reshape(x.shape)


def shift(x, dx, dy=0.0):
    """Translate by ``dx`` pixels to the right and ``dy`` down (fractional: bilinear; zeros enter)."""
    x = _check_images(x)
    H, W = x.shape[-2:]
    r, c = jnp.meshgrid(jnp.arange(H, dtype=jnp.float32), jnp.arange(W, dtype=jnp.float32), indexing="ij")
    return _clip(_warp(x, r - dy, c - dx))


def rotate(x, degrees):
    """Rotate counter-clockwise by ``degrees`` about the image centre (bilinear; zeros enter)."""
    x = _check_images(x)
    H, W = x.shape[-2:]
    r, c = jnp.meshgrid(jnp.arange(H, dtype=jnp.float32), jnp.arange(W, dtype=jnp.float32), indexing="ij")
    cy, cx = (H - 1) / 2, (W - 1) / 2
    th = jnp.deg2rad(degrees)
    # output pixel (r, c) samples the input at the inverse rotation (rows point down)
    y, xx = r - cy, c - cx
    src_c = jnp.cos(th) * xx - jnp.sin(th) * y + cx
    src_r = jnp.sin(th) * xx + jnp.cos(th) * y + cy
    return _clip(_warp(x, src_r, src_c))


# Five severities per corruption, fixed before looking at any model's accuracy.
# Entries marked "rel" are fractions of the image width (or height).
SEVERITIES = {
    "gaussian_noise": (0.1, 0.2, 0.3, 0.4, 0.5),         # sigma
    "salt_and_pepper": (0.02, 0.05, 0.10, 0.15, 0.20),   # fraction of pixels hit
    "gaussian_blur": (0.05, 0.075, 0.10, 0.125, 0.15),   # rel: sigma / width
    "contrast": (0.6, 0.45, 0.35, 0.25, 0.15),           # factor
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),             # delta
    "pixelate": (0.75, 0.625, 0.5, 0.375, 0.25),         # rel: cells / width
    "shift": (1 / 16, 1 / 8, 3 / 16, 1 / 4, 5 / 16),     # rel: dx / width
    "rotate": (5.0, 10.0, 15.0, 20.0, 30.0),             # degrees
}
NAMES = tuple(SEVERITIES)
_NEEDS_KEY = ("gaussian_noise", "salt_and_pepper")


def severity_value(name: str, severity: int, width: int):
    """The strength used by :func:`corrupt` (pixels for rel entries, an int for pixelate)."""
    if name not in SEVERITIES:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(NAMES)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1..5, got {severity!r}")
    v = SEVERITIES[name][severity - 1]
    if name == "pixelate":
        return max(1, int(round(v * width)))
    if name in ("gaussian_blur", "shift"):
        return v * width
    return v


def corrupt(name: str, key, x, severity: int):
    """Apply corruption ``name`` at ``severity`` (1–5) to images ``x`` of shape ``(..., H, W)``.

    ``key`` is used by the random corruptions (noise, salt and pepper) and ignored
    by the deterministic ones (pass any key). Compiled once per ``(name, severity,
    shape)``: ``name`` and ``severity`` are static.
    """
    x = _check_images(x)
    severity_value(name, severity, x.shape[-1])  # validate outside jit for a clean error
    return _corrupt_jit(name, key, x, int(severity))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _corrupt_jit(name, key, x, severity):
    v = severity_value(name, severity, x.shape[-1])
    if name in _NEEDS_KEY:
        return globals()[name](key, x, v)
    if name == "gaussian_blur":
        return gaussian_blur(x, v, radius=max(1, math.ceil(3 * v)))
    return globals()[name](x, v)


def severity_sweep(name: str, key, x):
    """All five severities of ``name`` at once: shape ``(5,) + x.shape``.

    Identical to ``[corrupt(name, key, x, s) for s in 1..5]`` but compiled once per
    ``(name, shape)`` instead of five times.
    """
    x = _check_images(x)
    severity_value(name, 1, x.shape[-1])
    return _sweep_jit(name, key, x)


@functools.partial(jax.jit, static_argnums=0)
def _sweep_jit(name, key, x):
    return jnp.stack([_corrupt_jit.__wrapped__(name, key, x, s) for s in range(1, 6)])
