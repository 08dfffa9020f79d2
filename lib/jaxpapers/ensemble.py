"""Seed ensembles: many models that differ only in their PRNG keys, trained and stress-tested together.

D'Amour et al. (2022) train the *same pipeline* with different random seeds (which
change the initialisation and the order of the mini-batches) and compare the
resulting predictors on i.i.d. and stress-test data. This module does that:

* :func:`seed_keys` gives every member an initialisation key and a data-order key,
  from separate streams, so either source of randomness can be frozen;
* :func:`train_ensemble` trains all members with :func:`jaxpapers.train.scan_fit`
  under one ``jax.vmap`` (one compile; the fast path for small nets on CPU) or one
  after the other (``vmapped=False``; better for conv nets on a GPU, where vmapped
  per-model convolutions batch poorly);
* :func:`minibatch_loss` builds the loss of one random mini-batch per step;
  :func:`batch_loss` does the same for data passed to :func:`train_ensemble` as
  ``data=`` (a jit argument: large datasets such as CIFAR-10 must not be captured
  in a closure, which would embed them in the compiled program as constants),
  optionally with data augmentation;
* :func:`evaluate` scores every member on a dict of test sets; :func:`summary`,
  :func:`format_summary` and :func:`rank_matrix` turn the scores into the
  mean/std/min/max table and the Spearman matrix of the seeds' rankings.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpapers import _validate, stats, train

VARY = ("init", "data")


def seed_keys(key, n_seeds: int, *, vary=VARY):
    """Per-member keys ``(init_keys, data_keys)``, each of shape ``(n_seeds, 2)``.

    Streams named in ``vary`` get a different key per member; the others use one
    shared key for every member (``vary=("data",)``: same initialisation, different
    mini-batch order).

    Raises:
        ValueError: ``n_seeds`` not a positive int, or ``vary`` names other than
            ``"init"``/``"data"``.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    vary = tuple(vary)
    bad = [v for v in vary if v not in VARY]
    if bad:
        raise ValueError(f"vary may only contain {VARY}, got {bad}")
    k_init, k_data = jax.random.split(key)
    out = []
    for name, k in (("init", k_init), ("data", k_data)):
        ks = jax.random.split(k, n_seeds) if name in vary else jnp.broadcast_to(k, (n_seeds,) + k.shape)
        out.append(ks)
    return out[0], out[1]


def minibatch_loss(apply_fn: Callable, x, y, batch_size: int) -> Callable:
    """Loss ``(params, key) -> (loss, {"accuracy": acc})`` of one random mini-batch.

    The key picks ``batch_size`` distinct training examples (so the data-order key
    decides the sequence of mini-batches); the loss is the mean softmax
    cross-entropy of ``apply_fn(params, x_batch)`` (logits ``(batch, classes)``)
    against integer labels ``y``.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(f"x and y must have the same first axis and y must be 1-D, got {x.shape}, {y.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= x.shape[0]:
        raise ValueError(f"batch_size must be an int in [1, {x.shape[0]}], got {batch_size!r}")

    def loss_fn(params, key):
        idx = jax.random.choice(key, x.shape[0], (batch_size,), replace=False)
        logits = apply_fn(params, x[idx])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y[idx])}

    return loss_fn


def batch_loss(apply_fn: Callable, batch_size: int, *, augment: Callable | None = None) -> Callable:
    """Loss ``(params, key, (x, y)) -> (loss, {"accuracy": acc})`` for :func:`train_ensemble`'s ``data=``.

    As :func:`minibatch_loss`, but the training set arrives as an argument. With
    ``augment`` (``(key, x_batch) -> x_batch``, e.g.
    :func:`jaxpapers.resnet.random_crop_flip`) the step's key is split into one
    key for the batch indices and one for the augmentation.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be a function (key, x) -> x or None, got {augment!r}")

    def loss_fn(params, key, data):
        x, y = data
        if x.shape[0] != y.shape[0] or y.ndim != 1:
            raise ValueError(f"x and y must have the same first axis and y must be 1-D, got {x.shape}, {y.shape}")
        if batch_size > x.shape[0]:
            raise ValueError(f"batch_size={batch_size} exceeds the {x.shape[0]} training examples")
        k_idx, k_aug = jax.random.split(key) if augment is not None else (key, None)
        idx = jax.random.choice(k_idx, x.shape[0], (batch_size,), replace=False)
        xb = x[idx] if augment is None else augment(k_aug, x[idx])
        logits = apply_fn(params, xb)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y[idx])}

    return loss_fn


def train_ensemble(init_fn: Callable, loss_fn: Callable, tx: optax.GradientTransformation, init_keys, data_keys,
                   steps: int, *, vmapped: bool = True, chunks: int = 1, progress: bool = False, data=None,
                   unroll: int | bool = 1):
    """Train one model per key pair; return ``(params, history)`` stacked over members.

    Args:
        init_fn: ``key -> params`` (a pytree).
        loss_fn: ``(params, key) -> loss`` or ``(loss, metrics)`` (see :mod:`jaxpapers.train`).
        tx: optax optimiser (the same for every member).
        init_keys, data_keys: ``(S, 2)`` keys from :func:`seed_keys`.
        steps: optimiser steps per member.
        vmapped: train all members in one ``jax.vmap`` (else one after the other,
            with one compiled function).
        chunks: cut the run into this many ``lax.scan`` calls (for a progress bar).
        progress: show a ``tqdm`` bar.
        data: optional pytree of arrays (e.g. ``(x_train, y_train)``), put on the
            device once and passed to every member's ``loss_fn(params, key, data)``
            as an argument of the compiled function (see :func:`batch_loss`).
        unroll: ``lax.scan``'s unrolling of each chunk (see :func:`jaxpapers.train.scan_fit`:
            ``True`` for a short CPU run of a convolutional network).

    Returns:
        ``params`` with a leading member axis ``S`` on every leaf, and ``history``:
        a dict of NumPy arrays of shape ``(S, steps)``.
    """
    init_keys, data_keys = jnp.asarray(init_keys), jnp.asarray(data_keys)
    if init_keys.ndim != 2 or init_keys.shape != data_keys.shape:
        raise ValueError(f"init_keys and data_keys must both be (S, 2), got {init_keys.shape}, {data_keys.shape}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1 or steps % chunks:
        raise ValueError(f"chunks must be a positive divisor of steps={steps}, got {chunks!r}")
    _validate.scan_unroll(unroll)
    make = lambda ki, kd: train.init_state(init_fn(ki), tx, kd)
    S = init_keys.shape[0]
    if data is None:
        run = lambda s: train.scan_fit(loss_fn, tx, s, steps // chunks, unroll=unroll)
        args = ()
    else:
        run = lambda s, d: train.scan_fit(lambda p, k: loss_fn(p, k, d), tx, s, steps // chunks, unroll=unroll)
        args = (jax.device_put(jax.tree_util.tree_map(jnp.asarray, data)),)
    if vmapped:
        states = [jax.jit(jax.vmap(make))(init_keys, data_keys)]
        run_all = jax.jit(jax.vmap(run, in_axes=(0,) + (None,) * len(args)))
    else:
        make_j = jax.jit(make)
        states = [make_j(init_keys[s], data_keys[s]) for s in range(S)]
        run_all = jax.jit(run)
    it = range(chunks)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"ensemble of {S} ({steps} steps)", unit="chunk")
    hists = [[] for _ in states]
    for _ in it:
        for m, st in enumerate(states):
            states[m], h = run_all(st, *args)
            hists[m].append(jax.device_get(h))
    history = {k: np.concatenate([np.asarray(h[k]) for h in hists[0]], axis=-1) for k in hists[0][0]}
    if vmapped:
        return states[0].params, history
    history = {k: np.stack([np.concatenate([np.asarray(h[k]) for h in hm]) for hm in hists]) for k in hists[0][0]}
    params = jax.tree_util.tree_map(lambda *ls: jnp.stack(ls), *[s.params for s in states])
    return params, history


@functools.partial(jax.jit, static_argnums=0)
def _predict(apply_fn, params, x):
    return jax.vmap(lambda p: jnp.argmax(apply_fn(p, x), -1))(params)


def predict(apply_fn: Callable, params, x, *, batch_size: int | None = None):
    """Predicted classes ``(S, n)`` of every member (``params`` stacked over ``S``) on ``x``.

    Compiled once per ``apply_fn`` and input shape (``apply_fn`` is a static argument).
    """
    f = lambda p, xb: _predict(apply_fn, p, xb)
    x = jnp.asarray(x)
    if batch_size is None or batch_size >= x.shape[0]:
        return np.asarray(f(params, x))
    return np.concatenate([np.asarray(f(params, x[i:i + batch_size])) for i in range(0, x.shape[0], batch_size)], 1)


def evaluate(apply_fn: Callable, params, test_sets: Mapping[str, tuple], *, batch_size: int | None = None):
    """Per-item correctness of every member on every test set.

    Args:
        apply_fn: ``(params, x) -> logits``.
        params: member-stacked parameters (leading axis ``S``).
        test_sets: ``{name: (x, y)}``; ``y`` integer labels ``(n,)``.

    Returns:
        ``{name: correct}`` with boolean arrays of shape ``(S, n)``.
    """
    if not test_sets:
        raise ValueError("test_sets must hold at least one (x, y) pair")
    out = {}
    for name, pair in test_sets.items():
        if len(pair) != 2:
            raise ValueError(f"test set {name!r} must be an (x, y) pair")
        x, y = pair
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"test set {name!r}: y must be 1-D with one label per x, got {y.shape} for {len(x)} inputs")
        out[name] = predict(apply_fn, params, x, batch_size=batch_size) == y[None, :]
    return out


def accuracies(correct: Mapping[str, np.ndarray]) -> dict:
    """``{name: (S,) accuracy in percent}`` from :func:`evaluate`'s output."""
    return {k: 100.0 * np.asarray(v, np.float64).mean(axis=1) for k, v in correct.items()}


def summary(acc: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per test set: ``name, mean, std, min, max, range`` of the members' accuracies.

    ``std`` is the sample standard deviation over members (``ddof=1``).
    """
    rows = []
    for name, a in acc.items():
        a = np.asarray(a, np.float64)
        if a.ndim != 1 or a.size < 2:
            raise ValueError(f"accuracies of {name!r} must be 1-D with >= 2 members, got shape {a.shape}")
        rows.append(dict(name=name, mean=a.mean(), std=a.std(ddof=1), min=a.min(), max=a.max(),
                         range=a.max() - a.min()))
    return rows


def format_summary(rows: list[dict], *, unit: str = "%") -> str:
    """A fixed-width text table of :func:`summary` rows."""
    w = max(len(r["name"]) for r in rows) + 2
    head = f"{'test set':<{w}}" + "".join(f"{h:>9}" for h in ("mean", "std", "min", "max", "range"))
    lines = [head + f"   ({unit})", "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<{w}}" + "".join(f"{r[k]:>9.2f}" for k in ("mean", "std", "min", "max", "range")))
    return "\n".join(lines)


def rank_matrix(acc: Mapping[str, np.ndarray], names=None):
    """Spearman correlations of the members' accuracies between test sets: ``(names, (K, K))``."""
    names = list(acc) if names is None else list(names)
    return names, stats.spearman_matrix(np.stack([np.asarray(acc[n]) for n in names]))


# ----------------------------------------------------------------------------------------
# Random-feature seed ensembles (the paper's theory section: the seed is the first layer)
# ----------------------------------------------------------------------------------------


def relu_features(W, x):
    """Random ReLU features ``phi(x) = max(0, x W / sqrt(d))``: ``x (n, d)``, ``W (d, p)`` -> ``(n, p)``."""
    return jax.nn.relu(x @ W / np.sqrt(W.shape[0]))


def min_norm_fit(phi, y, ridge: float = 0.0):
    """Minimum-norm least-squares weights ``phi^T (phi phi^T + ridge I)^{-1} y`` (``phi (n, p)``, ``p >= n``).

    With ``ridge = 0`` and ``phi`` of full row rank this is the interpolator ``phi^+ y``
    of smallest norm, which gradient descent from zero also reaches.
    """
    K = phi @ phi.T + ridge * jnp.eye(phi.shape[0], dtype=phi.dtype)
    return phi.T @ jnp.linalg.solve(K, y)


def random_feature_risks(keys, x, y, test_sets: Mapping[str, tuple], *, p: int, ridge: float = 0.0):
    """Test MSE of a seed ensemble of random-feature regressors whose seed is the first layer.

    Member ``s`` draws ``W_s ~ N(0, I)`` of shape ``(d, p)`` from ``keys[s]``, fits
    :func:`min_norm_fit` on :func:`relu_features` of the training data ``(x, y)``, and
    is scored on every test set. Training data and test sets are shared: only the random
    weights differ (the paper's random-feature "seed"). Members run one after the other
    inside one compiled ``lax.map`` (memory stays at one member's features).

    Args:
        keys: ``(S, 2)`` PRNG keys, one per member.
        x, y: training inputs ``(n, d)`` and targets ``(n,)``.
        test_sets: ``{name: (x_test (m, d), y_test (m,))}``.
        p: number of random features (``p > n`` for interpolation).
        ridge: ridge penalty (0: minimum-norm interpolation).

    Returns:
        ``{name: (S,) mean squared error}`` plus ``"train"``, the training MSE.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or jnp.ndim(y) != 1 or x.shape[0] != len(y):
        raise ValueError(f"x must be (n, d) and y (n,), got {x.shape} and {np.shape(y)}")
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"p must be a positive integer, got {p!r}")
    for name, (xt, yt) in test_sets.items():
        if np.ndim(xt) != 2 or np.shape(xt)[1] != x.shape[1] or np.shape(yt) != (np.shape(xt)[0],):
            raise ValueError(f"test set {name!r}: need x (m, {x.shape[1]}) and y (m,), got "
                             f"{np.shape(xt)} and {np.shape(yt)}")
    tests = {k: (jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)) for k, (a, b) in test_sets.items()}
    y = jnp.asarray(y, jnp.float32)

    def member(key):
        W = jax.random.normal(key, (x.shape[1], int(p)))
        phi = relu_features(W, x)
        theta = min_norm_fit(phi, y, ridge)
        out = {k: jnp.mean((relu_features(W, a) @ theta - b) ** 2) for k, (a, b) in tests.items()}
        out["train"] = jnp.mean((phi @ theta - y) ** 2)
        return out

    res = jax.jit(lambda ks: jax.lax.map(member, ks))(jnp.asarray(keys))
    return {k: np.asarray(v) for k, v in res.items()}
