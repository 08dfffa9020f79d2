"""Procedural MNIST-1D (Greydanus 2020), generated offline with NumPy.

MNIST-1D turns ten hand-made 12-point templates (one per digit) into 40-sample 1-D
signals by random padding, scaling, circular translation, correlated and i.i.d. noise and
a shear, then linear resampling. This module is an *independent re-implementation* of the
procedure of the ``mnist1d`` package (``mnist1d.data.make_dataset`` with its default
arguments, v0.0.2): same templates, same transformations and defaults, but driven by an
explicit ``numpy.random.Generator`` and vectorised over samples, so its samples are not
bit-identical to the package's (which uses NumPy's global RNG). Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

TEMPLATE_LEN = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
FINAL_SEQ_LENGTH = 40


def templates() -> np.ndarray:
    """The ten 12-point digit templates ``(10, 12)`` (whitened, starting at 0, scaled by 1/6)."""
    t = np.asarray([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ])
    t = t - t.mean(1, keepdims=True)
    t = t / t.std(1, keepdims=True)
    t = t - t[:, :1]
    return t / 6.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of the rows of ``x`` (m, L) to length n (like scipy's interp1d)."""
    old = np.linspace(0.0, 1.0, x.shape[1])
    new = np.linspace(0.0, 1.0, n)
    idx = np.clip(np.searchsorted(old, new, side="right") - 1, 0, x.shape[1] - 2)
    w = (new - old[idx]) / (old[idx + 1] - old[idx])
    return x[:, idx] * (1 - w) + x[:, idx + 1] * w


def transform(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply MNIST-1D's random transformations to templates ``x`` (m, 12) -> signals (m, 40)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != TEMPLATE_LEN:
        raise ValueError(f"x must have shape (m, {TEMPLATE_LEN}), got {x.shape}")
    m = x.shape[0]
    long = TEMPLATE_LEN + PADDING[1]
    out = np.empty((m, long))
    lo, hi = PADDING
    pads = lo + (rng.random(m) * (hi - lo + 1)).astype(int)
    for i in range(m):  # pad with zeros then dilate to a fixed length
        padded = np.concatenate([x[i] + 1e-8, np.zeros(pads[i])])
        out[i] = _resample(padded[None], long)[0]
    out *= 1 + SCALE_COEFF * (rng.random(m)[:, None] - 0.5)
    shifts = rng.integers(0, MAX_TRANSLATION, m)
    out = np.stack([np.roll(row, k) for row, k in zip(out, shifts)])
    mask = out != 0
    noise = gaussian_filter1d(CORR_NOISE_SCALE * rng.standard_normal(out.shape), 2, axis=1)
    out = mask * out + (1 - mask) * noise
    out = out + IID_NOISE_SCALE * rng.standard_normal(out.shape)
    coeff = SHEAR_SCALE * (rng.random(m)[:, None] - 0.5)
    out = out - coeff * np.linspace(-0.5, 0.5, long)[None]
    return _resample(out, FINAL_SEQ_LENGTH)


def make_dataset(num_samples: int = 5000, seed: int = 42):
    """Generate MNIST-1D: ``(x (num_samples, 40) float32, y (num_samples,) int32)``.

    Classes are balanced (``num_samples // 10`` per digit, the remainder dropped as in the
    original), shuffled, and the signals standardised to zero mean and unit variance over
    the whole set. ``num_samples = 70_000`` gives the MNIST-sized version used in full mode.

    Raises:
        ValueError: ``num_samples < 10``.
    """
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 10:
        raise ValueError(f"num_samples must be an integer >= 10, got {num_samples!r}")
    rng = np.random.default_rng(seed)
    per = num_samples // 10
    labels = np.repeat(np.arange(10), per)
    x = transform(templates()[labels], rng)
    order = rng.permutation(len(labels))
    x, labels = x[order], labels[order]
    x = (x - x.mean()) / x.std()
    return x.astype(np.float32), labels.astype(np.int32)
