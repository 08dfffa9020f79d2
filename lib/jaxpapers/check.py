"""Self-check cells for exercises.

A learner computes an answer; :func:`check` compares it with a reference within
a tolerance and prints a friendly verdict *without revealing the reference*.

>>> check("eta_star", 6.06, 6.0606, rtol=0.01)
✅ eta_star: correct (within 1% relative).
True
"""

from __future__ import annotations

import json
import os

import numpy as np

LOG_ENV = "JAXPAPERS_CHECK_LOG"


def _verdict(name: str, ok: bool, message: str) -> bool:
    print(f"{'✅' if ok else '❌'} {name}: {message}")
    return ok


def _jsonable(x):
    if isinstance(x, (str, bool)) or x is None:
        return x
    try:
        return np.asarray(x, dtype=np.float64).tolist()
    except (TypeError, ValueError):
        return repr(x)


def _log(name, answer, reference, rtol, atol, ok) -> None:
    """Append the call to ``$JAXPAPERS_CHECK_LOG`` (JSON lines), when set.

    The book's tests use the log to confirm that every self-check accepts the
    reference solution (in the instructor edition) and rejects a wrong answer.
    """
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    record = {"name": name, "answer": _jsonable(answer), "reference": _jsonable(reference),
              "rtol": rtol, "atol": atol, "ok": bool(ok), "cwd": os.getcwd()}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def check(name: str, answer, reference, *, rtol: float = 1e-5, atol: float = 0.0) -> bool:
    """Compare ``answer`` with ``reference`` and print a verdict; return ``True`` when it matches.

    Numbers and arrays are compared with ``np.allclose(answer, reference,
    rtol, atol)`` after checking shapes; anything else with ``==``. The message
    never prints the reference value.

    Raises:
        ValueError: negative tolerances, or an empty ``name``.
    """
    ok = _check(name, answer, reference, rtol=rtol, atol=atol)
    _log(name, answer, reference, rtol, atol, ok)
    return ok


def _check(name: str, answer, reference, *, rtol: float = 1e-5, atol: float = 0.0) -> bool:
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    if rtol < 0 or atol < 0:
        raise ValueError(f"tolerances must be non-negative, got rtol={rtol}, atol={atol}")
    if answer is None:
        return _verdict(name, False, "no answer yet (replace None with your answer).")
    if isinstance(reference, (str, bool)) or reference is None:
        return _verdict(name, answer == reference, "correct." if answer == reference else "not yet, try again.")
    try:
        a = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        return _verdict(name, False, f"expected a number or array, got {type(answer).__name__}.")
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return _verdict(name, False, f"expected shape {r.shape}, got {a.shape}.")
    if not np.all(np.isfinite(a)):
        return _verdict(name, False, "the answer contains NaN or inf.")
    if np.allclose(a, r, rtol=rtol, atol=atol):
        tol = f"within {rtol * 100:.2g}% relative" if rtol >= 1e-3 else f"rtol={rtol:g}, atol={atol:g}"
        return _verdict(name, True, f"correct ({tol}).")
    rel = float(np.max(np.abs(a - r) / np.maximum(np.abs(r), 1e-12)))
    if np.allclose(-a, r, rtol=rtol, atol=atol):
        hint = "the sign is flipped"
    elif rel < 0.1:
        hint = "close, but outside the tolerance"
    else:
        hint = "not yet, try again"
    return _verdict(name, False, f"{hint}.")
