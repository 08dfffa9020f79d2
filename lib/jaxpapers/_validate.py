"""Argument checks shared by the library's modules (raise ``ValueError`` naming the argument)."""

from __future__ import annotations

import numpy as np


def positive_int(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive integer (``bool`` is not accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def scan_unroll(value) -> None:
    """Raise ``ValueError`` unless ``value`` is a valid ``lax.scan`` ``unroll``: a bool or a positive integer."""
    if not isinstance(value, bool) and (not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"unroll must be True, False or a positive integer, got {value!r}")
