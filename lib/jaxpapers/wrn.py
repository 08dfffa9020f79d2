"""A growable Wide ResNet (WRN-depth-k) for 32×32 images, as grown by GradMax :cite:`evci2022gradmax`.

Architecture: the pre-activation WRN of Zagoruyko & Komodakis (2016). A 3×3 stem
conv to 16 channels, three stages of ``n = (depth - 4) / 6`` residual blocks with
widths ``16k, 32k, 64k`` (``k = widen``; the first block of stages 2 and 3 has
stride 2 and a 1×1 projection shortcut), a final BN-ReLU, global average pooling
and a dense head. ``depth=28, widen=1`` is WRN-28-1 (12 blocks).

Block ``b``: ``o = relu(BN(x))``; ``z = conv2(relu1(conv1(o, stride)))``;
``out = shortcut(o or x) + z``. As in the authors' growth configs, the **inner**
width (``conv1``'s output channels = ``conv2``'s input channels) is the grown one,
starts at ``grow_from`` × the block width and has **no normalisation** between
the two convs, only ``relu1`` (derivative 1 at 0), so zero-incoming-kernel growth
preserves the function exactly and eq. (C1) of :mod:`jaxpapers.growth_conv` is the
exact growth matrix. Parameters are padded to the final inner width; ``active``
(``(n_blocks,)`` int32) holds the current widths.

**Batch norm uses batch statistics** in training (pure functions: no running
averages to thread through ``scan``/``vmap``). The grown channels never pass
through a BN layer, so growth leaves every BN statistic, and the loss, unchanged.
For evaluation, :func:`population_stats` averages the batch statistics of a few
training batches (a "precise BN" estimate) and ``wrn_apply(..., stats=...)`` uses
them, so a test prediction does not depend on the rest of its batch.
Convolutions: ``jax.lax.conv_general_dilated``, ``NHWC`` images, ``HWIO`` kernels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpapers import _validate, growth, growth_conv, resnet

__all__ = ["wrn_layout", "init_wrn", "wrn_forward", "wrn_apply", "population_stats",
           "wrn_gradient_matrices", "wrn_grow", "wrn_loss", "augmented_batch", "train_chunk",
           "grow_runs", "test_accuracy", "PROTOCOL_METHODS", "growth_protocol"]

BN_EPS = 1e-5


def wrn_layout(depth: int = 28, widen: int = 1):
    """Static layout: ``(in_channels, out_channels, stride)`` of every residual block.

    Raises:
        ValueError: ``depth`` not of the form ``6n + 4`` with ``n ≥ 1``, or ``widen < 1``.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, …), got {depth!r}")
    if isinstance(widen, bool) or not isinstance(widen, (int, np.integer)) or widen < 1:
        raise ValueError(f"widen must be a positive integer, got {widen!r}")
    n = (depth - 4) // 6
    blocks, c_in = [], 16
    for s, w in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for i in range(n):
            blocks.append((c_in, w, 2 if (s > 0 and i == 0) else 1))
            c_in = w
    return tuple(blocks)


def _layout_of(params):
    """Recover the static layout from parameter shapes (strides: first block of stages 2, 3)."""
    n = len(params["blocks"]) // 3
    return tuple((b["conv1"].shape[2], b["conv2"].shape[3], 2 if (i % n == 0 and i > 0) else 1)
                 for i, b in enumerate(params["blocks"]))


def init_wrn(key, depth: int = 28, widen: int = 1, num_classes: int = 10, grow_from: float = 1.0,
             in_channels: int = 3, dtype=jnp.float32):
    """Parameters of a WRN-``depth``-``widen`` whose inner widths start at ``grow_from`` × the block width.

    He-normal conv kernels (fan-in of the *active* layer), zero padded slots, BN
    ``γ = 1, β = 0``, Glorot-uniform head, zero head bias. ``grow_from=0.25`` is the
    authors' start; ``1.0`` is the full-size network.

    Returns:
        ``(params, active)``: ``params = {"stem": (3, 3, in_channels, 16), "blocks": [{"bn_g", "bn_b":
        (C_in,), "conv1": (3, 3, C_in, W), "conv2": (3, 3, W, W), "proj": (1, 1, C_in, W) when the
        shape changes}, …], "bn_g", "bn_b": (64k,), "head_w": (64k, classes), "head_b": (classes,)}``;
        ``active: (n_blocks,) int32``.

    Raises:
        ValueError: bad depth/widen/classes, or ``grow_from`` that does not give a whole
            number of channels between 1 and the block width for every block.
    """
    layout = wrn_layout(depth, widen)
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    starts = [grow_from * w for _, w, _ in layout]
    if not all(abs(s - round(s)) < 1e-9 and 1 <= round(s) <= w for s, (_, w, _) in zip(starts, layout)):
        raise ValueError(f"grow_from={grow_from!r} must give whole inner widths in 1..width for widths "
                         f"{sorted({w for _, w, _ in layout})}")
    active = np.array([round(s) for s in starts], np.int32)
    keys = iter(jax.random.split(key, 3 * len(layout) + 2))

    def he(k, shape, fan_in):
        return jax.random.normal(k, shape, dtype) * np.sqrt(2.0 / fan_in)

    params = {"stem": he(next(keys), (3, 3, in_channels, 16), 9 * in_channels), "blocks": []}
    for (c_in, w, stride), a in zip(layout, active):
        mask = (jnp.arange(w) < a).astype(dtype)
        blk = {"bn_g": jnp.ones((c_in,), dtype), "bn_b": jnp.zeros((c_in,), dtype),
               "conv1": he(next(keys), (3, 3, c_in, w), 9 * c_in) * mask,
               "conv2": he(next(keys), (3, 3, w, w), 9 * int(a)) * mask[:, None]}
        k_proj = next(keys)
        if c_in != w or stride != 1:
            blk["proj"] = he(k_proj, (1, 1, c_in, w), c_in)
        params["blocks"].append(blk)
    c_last = layout[-1][1]
    lim = np.sqrt(6.0 / (c_last + num_classes))
    params.update(bn_g=jnp.ones((c_last,), dtype), bn_b=jnp.zeros((c_last,), dtype),
                  head_w=jax.random.uniform(next(keys), (c_last, num_classes), dtype, -lim, lim),
                  head_b=jnp.zeros((num_classes,), dtype))
    return params, jnp.asarray(active)


def _bn(x, g, b, stats):
    """Batch norm with this batch's statistics (``stats=None``) or the given ``(mean, var)``."""
    y, s = resnet.batch_norm(x, g, b, None if stats is None else {"mean": stats[0], "var": stats[1]}, BN_EPS)
    return y, (s["mean"], s["var"])


def wrn_forward(params, x, stats=None, probes=None):
    """Forward pass with the intermediates GradMax needs.

    Args:
        params: from :func:`init_wrn`.
        x: ``(B, 32, 32, C)`` images (any square size divisible by 4 works).
        stats: ``None`` (batch statistics) or a list of ``(mean, var)`` per BN layer
            (block order, then the final BN), e.g. from :func:`population_stats`.
        probes: ``None`` or one array per block, added to the block's ``conv2``
            output ``z`` (zeros: their gradient is ``δ = ∂L/∂z``).

    Returns:
        ``(logits (B, classes), aux)`` with ``aux["bn"]`` the statistics used,
        ``aux["inner_in"]`` the input of each block's ``conv1`` and ``aux["inner_out"]``
        each block's ``z`` (before the probe).
    """
    x = jnp.asarray(x)
    if x.ndim != 4 or x.shape[-1] != params["stem"].shape[2]:
        raise ValueError(f"x must be (B, H, W, {params['stem'].shape[2]}), got shape {x.shape}")
    layout = _layout_of(params)
    used, inner_in, inner_out = [], [], []
    st = iter(stats) if stats is not None else None
    h = growth_conv.conv2d(x, params["stem"])
    for b, ((c_in, w, stride), blk) in enumerate(zip(layout, params["blocks"])):
        o, s = _bn(h, blk["bn_g"], blk["bn_b"], None if st is None else next(st))
        o = jax.nn.relu(o)
        used.append(s)
        inner_in.append(o)
        z = growth_conv.conv2d(growth.relu1(growth_conv.conv2d(o, blk["conv1"], stride)), blk["conv2"])
        inner_out.append(z)
        if probes is not None:
            z = z + probes[b]
        short = growth_conv.conv2d(o, blk["proj"], stride) if "proj" in blk else h
        h = short + z
    o, s = _bn(h, params["bn_g"], params["bn_b"], None if st is None else next(st))
    used.append(s)
    feat = jnp.mean(jax.nn.relu(o), axis=(1, 2))
    return feat @ params["head_w"] + params["head_b"], {"bn": used, "inner_in": inner_in, "inner_out": inner_out}


def wrn_apply(params, x, stats=None):
    """Logits ``(B, classes)`` of images ``x: (B, H, W, C)`` (see :func:`wrn_forward`)."""
    return wrn_forward(params, x, stats)[0]


def population_stats(params, xs):
    """BN statistics averaged over batches ``xs: (n_batches, B, H, W, C)`` (batch-statistics forward).

    Per layer: the mean of the batch means and ``mean(var + mean²) - mean²``; with one
    batch these are that batch's statistics. Returns a list of ``(mean, var)``.
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 5:
        raise ValueError(f"xs must be (n_batches, B, H, W, C), got shape {xs.shape}")
    per = jax.lax.map(lambda xb: [(m, v + m * m) for m, v in wrn_forward(params, xb)[1]["bn"]], xs)
    return [(m.mean(0), (sq.mean(0) - jnp.square(m.mean(0)))) for m, sq in per]


def wrn_gradient_matrices(params, x, loss_of_logits):
    """Exact GradMax matrix of every block's inner conv pair on one batch (eq. C1).

    ``loss_of_logits(logits) -> scalar`` (e.g. mean cross-entropy of the growth batch).
    One forward and one backward pass give every block's ``δ`` (the gradient of a zero
    probe added to ``z``) and ``conv1`` input; all blocks see the same parameters, as
    in the authors' all-at-once growth. Returns a list of ``(9 C_in, 9 W)`` matrices.
    """
    if not callable(loss_of_logits):
        raise ValueError("loss_of_logits must be callable")
    layout = _layout_of(params)
    shapes = jax.eval_shape(lambda: wrn_forward(params, x)[1]["inner_out"])
    probes = [jnp.zeros(s.shape, s.dtype) for s in shapes]

    def f(pr):
        logits, aux = wrn_forward(params, x, probes=pr)
        return loss_of_logits(logits), aux["inner_in"]

    deltas, ins = jax.grad(f, has_aux=True)(probes)
    return [growth_conv.conv_gradient_matrix(xi, d, 3, 3, stride)
            for xi, d, (_, _, stride) in zip(ins, deltas, layout)]


def wrn_grow(params, active, out_kernels):
    """Grow every block: ``out_kernels[b]: (k_b, 3, 3, W_b)`` written into slots ``active[b] …``.

    Incoming kernels stay zero (function-preserving). ``active: (n_blocks,)`` may be
    traced; returns ``(params, active + k)``. Every block needs ``k_b ≥ 1`` (to leave a
    block unchanged, select the old parameters afterwards, e.g. with ``jnp.where``).
    """
    if len(out_kernels) != len(params["blocks"]):
        raise ValueError(f"need one out_kernels array per block ({len(params['blocks'])}), got {len(out_kernels)}")
    active = jnp.asarray(active, jnp.int32)
    blocks, new_active = [], []
    for b, (blk, ker) in enumerate(zip(params["blocks"], out_kernels)):
        nb, a = growth_conv.grow_conv(blk, active[b], ker, w_in="conv1", w_out="conv2")
        blocks.append(nb)
        new_active.append(a)
    return dict(params, blocks=blocks), jnp.stack(new_active)


# --------------------------------------------------------------------------- CIFAR pipeline
# The authors' CIFAR protocol as pure functions of stacked runs (a leading "run" axis on
# every parameter), so that several methods train side by side on the same batches (vmap).
def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def wrn_loss(params, x, y, l2: float = 2e-4):
    """``(cross-entropy + l2 · Σ kernel², cross-entropy)`` on one batch.

    The L2 term covers every kernel and the head weights, not the BN parameters or the
    head bias (Keras ``l2(2e-4)`` on the kernels, as in the authors' configs).
    """
    ce = _xent(wrn_apply(params, x), y)
    reg = sum(jnp.sum(jnp.square(v)) for path, v in jax.tree_util.tree_leaves_with_path(params)
              if not str(path[-1].key).startswith(("bn_", "head_b")))
    return ce + l2 * reg, ce


def augmented_batch(key, step, x, y, batch_size: int, augment: bool = True):
    """Batch ``step`` of a per-epoch permutation of ``(x, y)``, with random 4-pixel-padded crops and flips.

    ``step`` may be traced. ``x: (N, H, W, C)``; ``batch_size <= N``.
    """
    if not 1 <= batch_size <= x.shape[0]:
        raise ValueError(f"batch_size must be in 1..{x.shape[0]}, got {batch_size!r}")
    kp, ka = jax.random.split(key)
    n = x.shape[0]
    spe = n // batch_size
    perm = jax.random.permutation(jax.random.fold_in(kp, step // spe), n)
    idx = jax.lax.dynamic_slice(perm, ((step % spe) * batch_size,), (batch_size,))
    xb, yb = x[idx], y[idx]
    if augment:
        kc, kf = jax.random.split(jax.random.fold_in(ka, step))
        off = jax.random.randint(kc, (batch_size, 2), 0, 9)
        xp = jnp.pad(xb, ((0, 0), (4, 4), (4, 4), (0, 0)))
        xb = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), xb.shape[1:]))(xp, off)
        xb = jnp.where(jax.random.bernoulli(kf, 0.5, (batch_size,))[:, None, None, None], xb[:, :, ::-1], xb)
    return xb, yb


def train_chunk(params, opt_state, step0, x, y, key, tx, batch_size: int, n: int, l2: float = 2e-4,
                unroll: int | bool = 1):
    """``n`` optimiser steps of every run (leading axis), all runs on the same augmented batches.

    Returns ``(params, opt_state, ce)`` with ``ce: (n, runs)`` the training cross-entropy.
    ``tx``, ``batch_size``, ``n`` and ``unroll`` (``lax.scan``'s, see
    :func:`jaxpapers.train.scan_fit`) are static under ``jit``.
    """
    def body(carry, t):
        P, O = carry
        xb, yb = augmented_batch(key, step0 + t, x, y, batch_size)

        def one(p, o):
            (_, ce), g = jax.value_and_grad(wrn_loss, has_aux=True)(p, xb, yb, l2)
            u, o = tx.update(g, o, p)
            return optax.apply_updates(p, u), o, ce

        P, O, ce = jax.vmap(one)(P, O)
        return (P, O), ce

    (params, opt_state), ce = jax.lax.scan(body, (params, opt_state), jnp.arange(n), unroll=unroll)
    return params, opt_state, ce


def grow_runs(params, active, method, xb, yb, key, ks, scale=0.5):
    """Grow every run by its method index (0 GradMax, 1 uniform, 2 Gaussian, >= 3 none).

    Args:
        params, active: stacked runs (``active: (runs, n_blocks)``).
        method: ``(runs,)`` int32.
        xb, yb: the growth batch (shared by all runs).
        key: PRNG key of the random draws.
        ks: channels added per block (a static tuple of ints).
        scale: new outgoing kernels get ``scale ×`` the mean kernel norm (``mean_norm``).

    Returns:
        ``(params, active, info)``; ``info["dloss"]`` is the loss change on the growth batch,
        ``info["pred"]: (runs, blocks, 3)`` the new channels' gradient predicted by eq. (C1)
        for the GradMax, uniform and Gaussian candidates, and ``info["slot"]: (runs, blocks)``
        the autodiff gradient norm of the channels actually grown.
    """
    ks = tuple(int(k) for k in ks)
    if len(ks) != len(params["blocks"]) or min(ks) < 1:
        raise ValueError(f"ks must give k >= 1 channels for each of the {len(params['blocks'])} blocks, got {ks}")

    def one(p, a, m):
        ms = wrn_gradient_matrices(p, xb, lambda lg: _xent(lg, yb))
        outs, pred = [], []
        for b, (M, blk) in enumerate(zip(ms, p["blocks"])):
            cands = [growth_conv.conv_growth_directions(M, blk["conv2"], a[b], ks[b], scale, kind,
                                                       jax.random.fold_in(key, 3 * b + i))
                     for i, kind in enumerate(("gradmax", "uniform", "gaussian"))]
            pred.append(jnp.stack([jnp.linalg.norm(M @ c.reshape(ks[b], -1).T) for c in cands]))
            outs.append(jnp.stack(cands)[jnp.minimum(m, growth.METHOD_GAUSSIAN)])
        q, a2 = wrn_grow(p, a, outs)
        keep = m >= growth.METHOD_NONE
        q = jax.tree_util.tree_map(lambda u, v: jnp.where(keep, u, v), p, q)

        def loss(pp):
            return _xent(wrn_apply(pp, xb), yb)

        l_after, g = jax.value_and_grad(loss)(q)
        slot = jnp.stack([growth_conv.conv_slot_grad_norm(g["blocks"][b]["conv1"], a[b], ks[b])
                          for b in range(len(ks))])
        return q, jnp.where(keep, a, a2), dict(dloss=l_after - loss(p), pred=jnp.stack(pred), slot=slot)

    return jax.vmap(one)(params, active, method)


def test_accuracy(params, x_train, x_test, y_test, n_stat: int, stat_batch: int, n_test: int, test_batch: int):
    """Test accuracy of every run, BN statistics averaged over ``n_stat`` training batches of ``stat_batch``.

    Uses the first ``n_test × test_batch`` test images. The four sizes are static under ``jit``.
    """
    def one(p):
        stats = population_stats(p, x_train[:n_stat * stat_batch].reshape((n_stat, stat_batch) + x_train.shape[1:]))
        xs = x_test[:n_test * test_batch].reshape((n_test, test_batch) + x_test.shape[1:])
        pred = jax.lax.map(lambda xb: jnp.argmax(wrn_apply(p, xb, stats), -1), xs)
        return jnp.mean(pred.reshape(-1) == y_test[:n_test * test_batch])

    return jax.vmap(one)(params)


PROTOCOL_METHODS = ("gradmax", "uniform", "gaussian", "small", "big")
_train_chunk_jit = jax.jit(train_chunk, static_argnums=(6, 7, 8, 10))
_grow_runs_jit = jax.jit(grow_runs, static_argnums=(6,))
_test_accuracy_jit = jax.jit(test_accuracy, static_argnums=(4, 5, 6, 7))


def growth_protocol(key, x_train, y_train, x_test, y_test, *, seeds: int, steps: int, batch_size: int,
                    lr: float, warmup: int, first: int, every: int, growths: int, grow_from: float = 0.25,
                    scale: float = 0.5, l2: float = 2e-4, chunk: int = 500, depth: int = 28, widen: int = 1,
                    progress: bool = False, unroll: int | bool = 1) -> dict:
    """GradMax's image protocol: for each seed, five WRNs trained side by side on the same batches.

    The runs (:data:`PROTOCOL_METHODS`) are GradMax, random-uniform and random-Gaussian growth from
    ``grow_from`` × the final inner width, and the small and big fixed-width baselines. SGD with
    Nesterov momentum 0.9 and a linear warm-up (``warmup`` steps) to ``lr``, then cosine decay over
    ``steps``; growth at steps ``first, first + every, …`` (``growths`` of them, each adding
    ``1 / growths`` of the missing channels, run at the highest matmul precision so that the
    closed-form check holds on GPUs too). After every segment the test accuracy of every run is
    measured (BN statistics from up to 10 training batches of 500). The data are passed to the
    compiled functions as arguments, never baked into them. ``unroll`` unrolls each training
    chunk (see :func:`jaxpapers.train.scan_fit`: a short run on a CPU).

    Returns:
        ``{"curves": [(steps, 5)], "acc": [(growths + 1, 5)], "grow": [[info per growth]],
        "acc_steps": [step of each evaluation], "active": [(5, n_blocks)]}``, one list entry per
        seed; ``info`` is :func:`grow_runs`'s (``dloss``, ``pred``, ``slot``).

    Raises:
        ValueError: a growth at or after the last step, sizes below 1, or a batch larger than the
        training set.
    """
    for name, v in (("seeds", seeds), ("steps", steps), ("first", first), ("every", every), ("growths", growths),
                    ("chunk", chunk), ("warmup", warmup)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "warmup" else 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    _validate.scan_unroll(unroll)
    n_tr, n_te = x_train.shape[0], x_test.shape[0]
    if not 1 <= batch_size <= n_tr:
        raise ValueError(f"batch_size must be in 1..{n_tr}, got {batch_size!r}")
    grow_at = [first + g * every for g in range(growths)]
    if grow_at[-1] >= steps:
        raise ValueError(f"the last growth (step {grow_at[-1]}) must come before the last step ({steps})")
    bounds = [0] + grow_at + [steps]
    chunk = min(int(chunk), int(np.gcd.reduce(np.diff(bounds))))  # one compiled chunk length
    stat_bs = min(500, n_tr)
    test_bs = min(1000, n_te)
    eval_args = (max(1, min(10, n_tr // stat_bs)), stat_bs, n_te // test_bs, test_bs)
    tx = optax.sgd(optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps), momentum=0.9, nesterov=True)
    methods = jnp.arange(len(PROTOCOL_METHODS), dtype=jnp.int32)
    out = {"curves": [], "acc": [], "grow": [], "acc_steps": bounds[1:], "active": []}
    for seed in range(int(seeds)):
        kk = jax.random.split(jax.random.fold_in(key, seed), 3)
        small, a_small = init_wrn(kk[0], depth, widen, grow_from=grow_from)
        big, a_big = init_wrn(kk[0], depth, widen)
        ks = tuple(int(k) for k in (a_big - a_small) // growths)
        P = jax.tree_util.tree_map(lambda u, v: jnp.stack([u] * 4 + [v]), small, big)
        A = jnp.stack([a_small] * 4 + [a_big])
        O = jax.vmap(tx.init)(P)
        curves, accs, infos = [], [], []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"seed {seed}")
        for g in range(len(bounds) - 1):
            for s0 in range(bounds[g], bounds[g + 1], chunk):
                P, O, ce = _train_chunk_jit(P, O, jnp.int32(s0), x_train, y_train, kk[1], tx, batch_size, chunk, l2,
                                            unroll)
                curves.append(np.asarray(ce))
                if bar is not None:
                    bar.update(chunk)
            accs.append(np.asarray(_test_accuracy_jit(P, x_train, x_test, y_test, *eval_args)))
            if g < len(grow_at):
                xb, yb = augmented_batch(jax.random.fold_in(kk[2], g), jnp.int32(g), x_train, y_train, batch_size)
                with jax.default_matmul_precision("highest"):
                    P, A, info = _grow_runs_jit(P, A, methods, xb, yb, jax.random.fold_in(kk[2], 1000 + g), ks, scale)
                infos.append(jax.device_get(info))
        if bar is not None:
            bar.close()
        out["curves"].append(np.concatenate(curves))
        out["acc"].append(np.stack(accs))
        out["grow"].append(infos)
        out["active"].append(np.asarray(A))
    return out
