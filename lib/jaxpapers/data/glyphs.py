"""Procedural "Omniglot-like" glyphs: many classes of stroke drawings, generated offline.

A *class* is a handful of random quadratic Bézier strokes (three control points
each). A *sample* of the class is the same strokes under a small random
distortion, like a new person drawing the same character:

* control-point noise (``noise``, in units of the half-width of the canvas),
* a rotation (``max_rotation`` radians), a scale factor and a shift.

Each stroke is sampled at ``points_per_stroke`` points, i.e. drawn as a polyline,
and rendered with a Gaussian ink profile ``exp(-d² / 2 width²)`` of the distance
``d`` from a pixel centre to the nearest segment. The canvas is ``[-1, 1]²``.

Rendering every image at once materialises an
``(images, pixels, segments, 2)`` tensor (several GB for 20,000 glyphs), so
:func:`render` works in chunks of ``chunk`` images with one jitted function.

>>> images = make_glyphs(seed=0, n_classes=3, n_samples=2, size=16)
>>> images.shape, images.dtype
((3, 2, 16, 16), dtype('float32'))
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxpapers._validate import positive_int as _positive_int


def class_strokes(key: jax.Array, n_classes: int, n_strokes: int = 3) -> jax.Array:
    """Random stroke skeletons, one per class.

    Each stroke starts at a uniform point of ``[-0.6, 0.6]²``; its end point is
    the start plus a normal step (std 0.5) and its middle control point the
    start plus a normal step (std 0.35), all clipped to ``[-0.8, 0.8]``.

    Returns:
        ``(n_classes, n_strokes, 3, 2)`` control points (start, control, end).
    """
    _positive_int("n_classes", n_classes)
    _positive_int("n_strokes", n_strokes)
    k0, k1, k2 = jax.random.split(key, 3)
    start = jax.random.uniform(k0, (n_classes, n_strokes, 2), minval=-0.6, maxval=0.6)
    ctrl = start + 0.35 * jax.random.normal(k1, start.shape)
    end = start + 0.5 * jax.random.normal(k2, start.shape)
    return jnp.clip(jnp.stack([start, ctrl, end], axis=-2), -0.8, 0.8)


def jitter(key: jax.Array, strokes: jax.Array, n_samples: int, *, noise: float = 0.04,
           max_rotation: float = math.radians(14.0), scale: tuple = (0.85, 1.15),
           max_shift: float = 0.1) -> jax.Array:
    """Draw ``n_samples`` distorted copies of every class.

    Args:
        strokes: ``(n_classes, n_strokes, 3, 2)`` from :func:`class_strokes`.
        noise: std of the per-control-point noise.
        max_rotation: rotation angle drawn from ``U(-max_rotation, max_rotation)``.
        scale: ``(low, high)`` of the uniform scale factor.
        max_shift: shift drawn from ``U(-max_shift, max_shift)`` per axis.

    Returns:
        ``(n_classes, n_samples, n_strokes, 3, 2)``; sample ``p`` of a class is
        ``s R(θ) (p + ε) + t``.
    """
    if strokes.ndim != 4 or strokes.shape[-2:] != (3, 2):
        raise ValueError(f"strokes must have shape (n_classes, n_strokes, 3, 2), got {strokes.shape}")
    _positive_int("n_samples", n_samples)
    if noise < 0 or max_rotation < 0 or max_shift < 0:
        raise ValueError("noise, max_rotation and max_shift must be non-negative")
    if not (0 < scale[0] <= scale[1]):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    n_classes = strokes.shape[0]
    kn, kr, ks, kt = jax.random.split(key, 4)
    shape = (n_classes, n_samples)
    pts = strokes[:, None] + noise * jax.random.normal(kn, shape + strokes.shape[1:])
    theta = jax.random.uniform(kr, shape, minval=-max_rotation, maxval=max_rotation)
    s = jax.random.uniform(ks, shape, minval=scale[0], maxval=scale[1])
    t = jax.random.uniform(kt, shape + (2,), minval=-max_shift, maxval=max_shift)
    c, sn = jnp.cos(theta), jnp.sin(theta)
    rot = jnp.stack([jnp.stack([c, -sn], -1), jnp.stack([sn, c], -1)], -2)  # (..., 2, 2)
    pts = jnp.einsum("csij,csnpj->csnpi", rot, pts) * s[..., None, None, None]
    return pts + t[:, :, None, None, :]


def bezier_points(ctrl: jax.Array, n_points: int) -> jax.Array:
    """Points on quadratic Bézier curves ``B(t) = (1-t)² P0 + 2t(1-t) P1 + t² P2``.

    Args:
        ctrl: ``(..., 3, 2)`` control points.
        n_points: points per curve, at ``t = 0, 1/(n-1), ..., 1``.

    Returns:
        ``(..., n_points, 2)``.
    """
    if ctrl.shape[-2:] != (3, 2):
        raise ValueError(f"ctrl must have shape (..., 3, 2), got {ctrl.shape}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    t = jnp.linspace(0.0, 1.0, n_points)[:, None]
    p0, p1, p2 = ctrl[..., 0:1, :], ctrl[..., 1:2, :], ctrl[..., 2:3, :]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2


def pixel_centres(size: int) -> jax.Array:
    """``(size, size, 2)`` pixel-centre coordinates ``(x, y)`` on ``[-1, 1]²`` (row 0 at the top)."""
    _positive_int("size", size)
    c = (jnp.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = jnp.meshgrid(c, -c)  # image rows run downwards, y upwards
    return jnp.stack([x, y], axis=-1)


def _render_one(strokes, size, width, points_per_stroke):
    pts = bezier_points(strokes, points_per_stroke)           # (strokes, P, 2)
    a = pts[:, :-1].reshape(-1, 2)                            # segment starts (S, 2)
    b = pts[:, 1:].reshape(-1, 2)                             # segment ends
    g = pixel_centres(size).reshape(-1, 1, 2)                 # (pixels, 1, 2)
    ab = b - a
    u = jnp.clip(jnp.sum((g - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    d2 = jnp.sum((g - a - u[..., None] * ab) ** 2, -1)        # (pixels, S)
    ink = jnp.exp(-jnp.min(d2, axis=-1) / (2 * width**2))
    return ink.reshape(size, size)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _render_chunk(strokes, size, width, points_per_stroke):
    return jax.vmap(lambda s: _render_one(s, size, width, points_per_stroke))(strokes)


def render(strokes, size: int = 20, *, width: float | None = None, points_per_stroke: int = 9,
           chunk: int = 1024) -> np.ndarray:
    """Render stroke sets to grey-scale images in ``[0, 1]``.

    Args:
        strokes: ``(..., n_strokes, 3, 2)`` control points on the canvas ``[-1, 1]²``.
        size: image side in pixels.
        width: ink width (std of the Gaussian profile, canvas units); default
            ``1.5 / size`` (0.75 pixel).
        points_per_stroke: polyline points per Bézier stroke.
        chunk: images rendered per call of the jitted renderer (memory bound:
            ``chunk * size² * segments * 2`` floats).

    Returns:
        NumPy float32 ``(..., size, size)``.
    """
    strokes = jnp.asarray(strokes, jnp.float32)
    if strokes.ndim < 3 or strokes.shape[-2:] != (3, 2):
        raise ValueError(f"strokes must have shape (..., n_strokes, 3, 2), got {strokes.shape}")
    _positive_int("size", size)
    _positive_int("chunk", chunk)
    width = 1.5 / size if width is None else float(width)
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    lead = strokes.shape[:-3]
    flat = strokes.reshape((-1,) + strokes.shape[-3:])
    n = flat.shape[0]
    chunk = min(chunk, n)
    pad = (-n) % chunk
    flat = jnp.concatenate([flat, jnp.zeros((pad,) + flat.shape[1:], flat.dtype)]) if pad else flat
    parts = [np.asarray(_render_chunk(flat[i:i + chunk], size, width, points_per_stroke))
             for i in range(0, flat.shape[0], chunk)]
    return np.concatenate(parts)[:n].reshape(lead + (size, size)).astype(np.float32)


def make_glyphs(seed: int, n_classes: int, n_samples: int, size: int = 20, *, n_strokes: int = 3,
                chunk: int = 1024, **jitter_kwargs) -> np.ndarray:
    """A fixed-seed glyph data set: ``(n_classes, n_samples, size, size)`` float32 in ``[0, 1]``.

    The same ``seed`` always gives the same classes and samples; classes are
    drawn independently, so the first ``m`` classes of a larger set equal the
    set made with ``n_classes=m`` only when ``n_classes`` matches (split a
    single set into train and test classes instead).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _positive_int("n_classes", n_classes)
    _positive_int("n_samples", n_samples)
    k_class, k_sample = jax.random.split(jax.random.PRNGKey(int(seed)))
    strokes = class_strokes(k_class, n_classes, n_strokes)
    samples = jitter(k_sample, strokes, n_samples, **jitter_kwargs)
    return render(samples, size, chunk=chunk)


# --- Optional: the real Omniglot (full mode only; never used in fast mode) -------------------------

OMNIGLOT_URLS = (
    "https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip",
    "https://github.com/brendenlake/omniglot/raw/master/python/images_evaluation.zip",
)


def parse_omniglot_zip(path, size: int = 28) -> np.ndarray:
    """Read an Omniglot zip (``<set>/<alphabet>/<character>/<drawing>.png``) into ink images.

    Every character directory is a class; drawings are sorted by file name and the
    class keeps the first ``min`` count over classes (20 in Omniglot). Images are
    converted to ink in ``[0, 1]`` (1 = black stroke) and resized to ``size``
    with a box filter.

    Returns:
        ``(classes, drawings, size, size)`` float32, classes sorted by path.

    Raises:
        ValueError: no PNG files in the archive, or a bad ``size``.
    """
    import io
    import zipfile

    from PIL import Image

    _positive_int("size", size)
    by_class: dict[str, list[str]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.lower().endswith(".png"):
                by_class.setdefault(name.rsplit("/", 1)[0], []).append(name)
        if not by_class:
            raise ValueError(f"{path}: no PNG files found")
        n = min(len(v) for v in by_class.values())
        out = np.zeros((len(by_class), n, size, size), np.float32)
        for c, (_, files) in enumerate(sorted(by_class.items())):
            for s, name in enumerate(files[:n]):
                img = Image.open(io.BytesIO(zf.read(name))).convert("L").resize((size, size), Image.BOX)
                out[c, s] = 1.0 - np.asarray(img, np.float32) / 255.0
    return out


def load_omniglot(size: int = 28, urls=OMNIGLOT_URLS):
    """The 1,623 Omniglot classes (background then evaluation set) as ``(classes, 20, size, size)``.

    Downloads the two zips once, parses them with :func:`parse_omniglot_zip` and
    caches the result as ``omniglot<size>.npz`` under :func:`jaxpapers.data.cache_dir`.
    Raises ``OSError`` when offline: callers fall back to
    :func:`make_glyphs`.
    """
    from jaxpapers.data import cache_dir, save_npz
    from jaxpapers.data.fetch import download

    _positive_int("size", size)
    path = cache_dir() / f"omniglot{size}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["images"]
    parts = []
    for url in urls:
        local = cache_dir() / url.rsplit("/", 1)[1]
        if not local.exists():
            download([url], local, None)  # the Omniglot repository publishes no checksums
        parts.append(parse_omniglot_zip(local, size))
    n = min(p.shape[1] for p in parts)
    images = np.concatenate([p[:, :n] for p in parts])
    save_npz(path, compressed=True, images=images)
    return images
