"""A small functional ResNet for 32×32 images (CIFAR): parameters are a plain pytree.

The architecture is the CIFAR ResNet of He et al. (2016): a 3×3 stem convolution,
``stages`` stages of ``blocks`` basic residual blocks (two 3×3 convolutions) with
widths ``width, 2·width, 4·width, …``, the first block of every stage after the
first halving the resolution (stride 2, with a 1×1 projection on the shortcut),
then global average pooling and a dense head. ``width=16, blocks=3, stages=3`` is
ResNet-20 (``6·blocks + 2`` weight layers, about 0.27 M parameters).

**Normalisation: batch norm without running statistics.** :func:`init` and
:func:`apply` are pure and nothing is updated in place, so ``jax.vmap`` over seeds
and ``lax.scan`` over steps work directly (:mod:`jaxpapers.ensemble`). Training
normalises every layer with the statistics of the current mini-batch (batch norm's
training mode). After training, :func:`freeze_stats` computes each layer's
population mean and variance once, from training images without augmentation
(the "precise BN" of Wu & Johnson, 2021, instead of running averages), and stores
them under ``params["stats"]``; :func:`apply` then uses them, so a test image's
prediction does not depend on the rest of its batch. Two alternatives were
rejected for stress tests: test-batch statistics would adapt the network to a
batch of *corrupted* images (test-time adaptation, which removes much of the
accuracy drop a stress test measures; Schneider et al., 2020), and GroupNorm,
which normalises every image on its own, makes the network nearly invariant to
global contrast (and partly to brightness), two of the corruptions; standard
ResNet-50s (the architecture of the paper's vision study) use batch norm. The scale of the last
normalisation in each residual branch starts at zero, so every block starts as
the identity (Goyal et al., 2017).

Convolutions are :func:`jax.lax.conv_general_dilated` (``NHWC`` images, ``HWIO``
kernels) with PyTorch-style symmetric padding ``k // 2``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxpapers._validate import positive_int as _pos_int


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """Cross-correlation of ``x: (B, H, W, C_in)`` with ``w: (k, k, C_in, C_out)``, padding ``k // 2``.

    Output ``(B, ⌊(H + 2p - k) / s⌋ + 1, …, C_out)`` with ``p = k // 2``: ``H / s`` for
    odd ``k`` and even ``H``.
    """
    if w.ndim != 4 or w.shape[0] != w.shape[1]:
        raise ValueError(f"w must have shape (k, k, C_in, C_out), got {w.shape}")
    if x.ndim != 4 or x.shape[-1] != w.shape[2]:
        raise ValueError(f"x must have shape (B, H, W, {w.shape[2]}), got {x.shape}")
    _pos_int("stride", stride)
    p = w.shape[0] // 2
    return jax.lax.conv_general_dilated(x, w, (stride, stride), [(p, p), (p, p)],
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def batch_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, stats: dict | None = None, eps: float = 1e-5):
    """Batch norm of ``x: (B, H, W, C)`` per channel; returns ``(y, {"mean", "var"})``.

    ``stats=None`` (training): mean and (biased) variance over ``B, H, W`` of this
    batch, which are also returned. Otherwise ``stats["mean"], stats["var"]``
    (``(C,)`` each) are used and returned unchanged.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), got {x.shape}")
    C = x.shape[-1]
    if gamma.shape != (C,) or beta.shape != (C,):
        raise ValueError(f"gamma and beta must have shape ({C},), got {gamma.shape}, {beta.shape}")
    if stats is None:
        mean = x.mean(axis=(0, 1, 2))
        stats = {"mean": mean, "var": ((x - mean) ** 2).mean(axis=(0, 1, 2))}
    return (x - stats["mean"]) * jax.lax.rsqrt(stats["var"] + eps) * gamma + beta, stats


def init(key: jax.Array, *, width: int = 16, blocks: int = 3, stages: int = 3, num_classes: int = 10,
         in_channels: int = 3) -> dict:
    """Parameters of a ``6·blocks + 2``-layer CIFAR ResNet (for ``stages=3``).

    Returns ``{"stem": {w, gamma, beta}, "blocks": [...], "head": {w, b}}``. A
    block holds ``w1, g1, b1, w2, g2, b2`` and, if it changes the width (the first
    block of stages 2, 3, …; it then also has stride 2), a projection
    ``wp, gp, bp``. Kernels are He-normal, ``g2`` starts at zero, the head is
    LeCun-normal with zero bias. All weights are slices of *one* normal draw from
    ``key`` (one random-number kernel instead of one per layer: XLA compiles the
    per-layer version of a ResNet-20 about 20× slower on CPU).
    """
    for name, v in (("width", width), ("blocks", blocks), ("stages", stages), ("num_classes", num_classes),
                    ("in_channels", in_channels)):
        _pos_int(name, v)
    # the random weights as (path, shape, std); the norm scales and shifts are constants
    ones = lambda c: jnp.ones((c,), jnp.float32)
    zeros = lambda c: jnp.zeros((c,), jnp.float32)
    he = lambda k, cin: math.sqrt(2.0 / (k * k * cin))
    spec = [(("stem", "w"), (3, 3, in_channels, width), he(3, in_channels))]
    blocks_out = []
    cin = width
    for s in range(stages):
        cout = width * 2**s
        for _ in range(blocks):
            i = len(blocks_out)
            blocks_out.append({"g1": ones(cout), "b1": zeros(cout), "g2": zeros(cout), "b2": zeros(cout)})
            spec += [(("blocks", i, "w1"), (3, 3, cin, cout), he(3, cin)),
                     (("blocks", i, "w2"), (3, 3, cout, cout), he(3, cout))]
            if cin != cout:
                blocks_out[i].update(gp=ones(cout), bp=zeros(cout))
                spec.append((("blocks", i, "wp"), (1, 1, cin, cout), he(1, cin)))
            cin = cout
    spec.append((("head", "w"), (cin, num_classes), 1.0 / math.sqrt(cin)))
    sizes = [math.prod(shape) for _, shape, _ in spec]
    flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    params = {"stem": {"gamma": ones(width), "beta": zeros(width)}, "blocks": blocks_out,
              "head": {"b": zeros(num_classes)}}
    offset = 0
    for (path, shape, std), n in zip(spec, sizes):
        node = params
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = std * flat[offset:offset + n].reshape(shape)
        offset += n
    return params


def _norm(h, gamma, beta, stats, used):
    y, st = batch_norm(h, gamma, beta, None if stats is None else stats[len(used)])
    used.append(st)
    return y


def _forward(params: dict, x: jax.Array, stats):
    """Logits and the per-layer batch-norm statistics used (stem, then per block ``n1, n2[, proj]``)."""
    x = jnp.asarray(x)
    cin = params["stem"]["w"].shape[2]
    if x.ndim != 4 or x.shape[-1] != cin:
        raise ValueError(f"x must have shape (B, H, W, {cin}) (NHWC), got {x.shape}")
    used = []
    h = jax.nn.relu(_norm(conv2d(x, params["stem"]["w"]), params["stem"]["gamma"], params["stem"]["beta"], stats, used))
    for p in params["blocks"]:
        stride = 2 if "wp" in p else 1  # blocks that change the width also halve the resolution
        r = jax.nn.relu(_norm(conv2d(h, p["w1"], stride), p["g1"], p["b1"], stats, used))
        r = _norm(conv2d(r, p["w2"]), p["g2"], p["b2"], stats, used)
        short = _norm(conv2d(h, p["wp"], stride), p["gp"], p["bp"], stats, used) if "wp" in p else h
        h = jax.nn.relu(r + short)
    feats = h.mean(axis=(1, 2))  # global average pooling
    return feats @ params["head"]["w"] + params["head"]["b"], used


def apply(params: dict, x: jax.Array) -> jax.Array:
    """Logits ``(B, num_classes)`` of images ``x: (B, H, W, C_in)`` in ``[0, 1]``.

    Uses ``params["stats"]`` (see :func:`freeze_stats`) when present, else the
    statistics of the batch ``x`` itself (training mode).
    """
    return _forward(params, x, params.get("stats"))[0]


def population_stats(params: dict, x: jax.Array, batch_size: int = 500) -> list:
    """Per-layer population ``{"mean", "var"}`` of the batch-norm inputs over the images ``x``.

    ``x`` is cut into ``len(x) // batch_size`` batches (a remainder is dropped);
    each batch goes through the network in training mode, and the batches'
    means and second moments are averaged.
    """
    _pos_int("batch_size", batch_size)
    x = jnp.asarray(x)
    n = x.shape[0] // batch_size
    if n < 1:
        raise ValueError(f"need at least batch_size={batch_size} images, got {x.shape[0]}")
    train_params = {k: v for k, v in params.items() if k != "stats"}
    xs = x[:n * batch_size].reshape((n, batch_size) + x.shape[1:])
    per_batch = jax.lax.map(lambda xb: _forward(train_params, xb, None)[1], xs)
    out = []
    for st in per_batch:
        mean = st["mean"].mean(0)
        second = (st["var"] + st["mean"] ** 2).mean(0)
        out.append({"mean": mean, "var": jnp.maximum(second - mean**2, 0.0)})
    return out


def _freeze(params, x, batch_size, members):
    if members:
        return jax.lax.map(lambda p: _freeze(p, x, batch_size, False), params)
    return dict(params, stats=population_stats(params, x, batch_size))


_freeze_jit = jax.jit(_freeze, static_argnums=(2, 3))


def freeze_stats(params: dict, x, *, batch_size: int = 500, members: bool = False) -> dict:
    """``params`` plus ``"stats"``: population batch-norm statistics over ``x`` for :func:`apply`.

    With ``members=True`` every leaf has a leading member axis (an ensemble from
    :func:`jaxpapers.ensemble.train_ensemble`); the members are processed one
    after the other on the device. ``x`` is a compiled-function argument, not a
    captured constant.
    """
    _pos_int("batch_size", batch_size)
    return _freeze_jit(params, jnp.asarray(x), int(batch_size), bool(members))


def num_params(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))


def random_crop_flip(key: jax.Array, x: jax.Array, pad: int = 4) -> jax.Array:
    """The standard CIFAR augmentation: zero-pad by ``pad``, crop back at a random offset, flip half.

    Every image of ``x: (B, H, W, C)`` gets its own offset ``(dy, dx)`` in
    ``[0, 2·pad]²`` and its own coin for a left-right flip.
    """
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), got {x.shape}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    B, H, W, C = x.shape
    k_off, k_flip = jax.random.split(key)
    off = jax.random.randint(k_off, (B, 2), 0, 2 * pad + 1)
    flip = jax.random.bernoulli(k_flip, 0.5, (B,))
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    crop = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (H, W, C)))(xp, off)
    return jnp.where(flip[:, None, None, None], crop[:, :, ::-1], crop)
