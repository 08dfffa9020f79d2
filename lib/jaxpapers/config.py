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

from jaxpapers._validate import positive_int

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


DRY_RUN_ENV = "BOOK_DRY_RUN"
FRACTION_ENV = "BOOK_DRY_FRACTION"


def dry_run() -> bool:
    """``True`` under ``BOOK_DRY_RUN=1``: every loop length from :func:`steps` is cut short.

    The dry run executes a chapter's code path (full mode's, with ``BOOK_SCALE=full``) in
    minutes on a CPU; the claims ledger then records its rules without enforcing them.

    Raises:
        ValueError: ``BOOK_DRY_RUN`` holds anything but 1/0, true/false, yes/no.
    """
    raw = os.environ.get(DRY_RUN_ENV, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{DRY_RUN_ENV}={raw!r}: expected 1/0, true/false or yes/no")


def dry_fraction() -> float:
    """``BOOK_DRY_FRACTION`` (default 0): the share of every loop that a dry run keeps.

    Raises:
        ValueError: not a number in ``[0, 1]``.
    """
    raw = os.environ.get(FRACTION_ENV, "").strip() or "0"
    try:
        value = float(raw)
    except ValueError as err:
        raise ValueError(f"{FRACTION_ENV}={raw!r} is not a number") from err
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{FRACTION_ENV}={raw!r} must lie in [0, 1]")
    return value


def steps(fast: int, full: int, *, minimum: int = 2) -> int:
    """:func:`pick` for a loop length (optimiser steps, epochs, generations, iterations).

    Outside a dry run this is ``pick(fast, full)``. In a dry run the length is
    ``max(minimum, round(length * BOOK_DRY_FRACTION))`` (never more than the length
    itself): ``minimum`` steps by default, so a chapter runs its whole code path in
    seconds; the full-mode probe runs two fractions and projects the full wall time from
    the difference.

    Raises:
        ValueError: a length or ``minimum`` that is not a positive integer.
    """
    for name, v in (("fast", fast), ("full", full), ("minimum", minimum)):
        positive_int(name, v)
    length = pick(fast, full)
    if not dry_run():
        return length
    return min(length, max(minimum, round(length * dry_fraction())))


def sized(fast: int, full: int, *, dry: int) -> int:
    """:func:`pick` for a data or model size whose cost grows faster than linearly (an exact
    :math:`O(N^2)` step, say), with ``dry`` instead in the CPU dry run.

    The CPU dry run (``BOOK_DRY_RUN=1`` at fraction 0) only shows that the full-mode code path
    executes, so it may use a smaller size; the probe (a fraction above 0) keeps the full size,
    so its projection of the full-mode time stays right.

    Raises:
        ValueError: a size that is not a positive integer.
    """
    for name, v in (("fast", fast), ("full", full), ("dry", dry)):
        positive_int(name, v)
    size = pick(fast, full)
    return min(size, dry) if cpu_dry_run() else size


def cpu_dry_run() -> bool:
    """``True`` in the CPU dry run (``BOOK_DRY_RUN=1`` at fraction 0), which only shows that the
    full-mode code path executes: a chapter may then use smaller sizes (:func:`sized`) or fewer
    grid points; the probe (a fraction above 0) runs the full sizes."""
    return dry_run() and dry_fraction() == 0


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
