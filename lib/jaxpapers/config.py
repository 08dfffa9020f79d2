"""The scale switch shared by every chapter.

Every chapter runs at one of two scales, chosen with the ``BOOK_SCALE``
environment variable:

``fast`` (default)
    CPU-sized: runs in CI, on a laptop and on Colab's free tier in minutes.
``full``
    GPU-sized: close to the paper's own experiment.

>>> import os; os.environ["BOOK_SCALE"] = "fast"
>>> pick(fast=1_500, full=50_000)
1500
"""

from __future__ import annotations

import os
import platform
from typing import TypeVar

SCALES = ("fast", "full")
ENV_VAR = "BOOK_SCALE"

T = TypeVar("T")


def scale() -> str:
    """Return the current scale, ``"fast"`` or ``"full"``.

    Reads ``BOOK_SCALE`` (case-insensitive, surrounding spaces ignored); an
    unset or empty variable means ``"fast"``.

    Raises:
        ValueError: ``BOOK_SCALE`` holds anything else.
    """
    raw = os.environ.get(ENV_VAR, "")
    value = raw.strip().lower() or "fast"
    if value not in SCALES:
        raise ValueError(
            f"{ENV_VAR}={raw!r} is not a scale; expected one of {', '.join(SCALES)} "
            f"(unset means 'fast')."
        )
    return value


def is_full() -> bool:
    """``True`` when the book runs at the paper's (GPU) scale."""
    return scale() == "full"


def pick(fast: T, full: T) -> T:
    """Return ``fast`` or ``full`` according to :func:`scale`.

    Example: ``steps = pick(fast=1_500, full=50_000)``.
    """
    return full if scale() == "full" else fast


def device_report() -> str:
    """One line naming the JAX version, backend and devices, for a chapter's setup cell."""
    import jax  # imported here so that ``config`` stays importable without jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (
        f"jax {jax.__version__} | backend {jax.default_backend()} | "
        f"{len(devices)} device(s): {', '.join(kinds)} | python {platform.python_version()} | "
        f"scale {scale()}"
    )
