"""Explicit, named PRNG keys: one integer seed per chapter, one key per purpose.

Keys are derived by folding a stable hash of a name into the root key, so adding
a new named key never changes the others (unlike splitting a key ``n`` ways).

>>> k = named_keys(0, "init", "data")
>>> sorted(k)
['data', 'init']
"""

from __future__ import annotations

import zlib

import jax


def root_key(seed: int) -> jax.Array:
    """Return ``jax.random.PRNGKey(seed)`` after checking the seed.

    Raises:
        ValueError: ``seed`` is not a non-negative Python/NumPy integer below 2**32.
    """
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise ValueError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return jax.random.PRNGKey(seed)


def name_key(key: jax.Array, name: str) -> jax.Array:
    """Derive the sub-key called ``name`` from ``key`` (stable across runs and Python versions)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    return jax.random.fold_in(key, zlib.crc32(name.encode("utf-8")))


def named_keys(seed: int, *names: str) -> dict[str, jax.Array]:
    """Return ``{name: key}`` for every name, all derived from one seed.

    Raises:
        ValueError: no names, or a name given twice.
    """
    if not names:
        raise ValueError("give at least one name")
    if len(set(names)) != len(names):
        raise ValueError(f"names must be distinct, got {names}")
    root = root_key(seed)
    return {n: name_key(root, n) for n in names}


SEED_ENV = "BOOK_SEED"


def book_seed(default: int = 0) -> int:
    """The chapter's seed: ``$BOOK_SEED`` when set (seed studies, a reader's own check), else ``default``.

    Every claim of a chapter must hold for any seed; ``BOOK_SEED=3 pytest book/NN-name.ipynb``
    runs a chapter under another one.

    Raises:
        ValueError: ``BOOK_SEED`` is not an integer in ``[0, 2**32)``.
    """
    import os

    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        root_key(default)  # validates the default
        return int(default)
    try:
        seed = int(raw)
    except ValueError as err:
        raise ValueError(f"{SEED_ENV}={raw!r} is not an integer") from err
    if not 0 <= seed < 2**32:
        raise ValueError(f"{SEED_ENV}={raw!r} must be in [0, 2**32)")
    return seed
