"""Multi-head attention and transformer blocks, written for reuse across chapters.

One function, :func:`mha`, covers the variants the book needs:

* softmax attention (standard transformers, ViT, HyperTransformer) or *linear*
  attention without normalisation (von Oswald et al.'s LSA layer);
* the ``1/sqrt(key_size)`` scaling on or off;
* queries and keys/values from different token sets (context-only keys as in
  the in-context-learning chapter, memory tokens appended to keys/values only in
  the memory-token chapter);
* an optional boolean mask (``True`` = may attend);
* the attention weights are returned next to the output.

Shapes follow the row-vector convention: tokens are rows, ``x @ W``.
For one head with query/key/value matrices ``W_Q, W_K, W_V`` (``d × k``) and
output ``W_O`` (``k × d``), linear attention computes (eq. 1)

    out_j = sum_i (x_j W_Q · x'_i W_K) x'_i W_V W_O,

where ``x'`` are the key/value tokens. Softmax attention replaces the scores
``s_ji = x_j W_Q · x'_i W_K`` by ``softmax_i(s_ji / sqrt(k))``.

Parameters are plain dicts of arrays (see :func:`init_mha`, :func:`init_block`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _check_scale(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def init_mha(key: jax.Array, d_model: int, num_heads: int, key_size: int, value_size: int | None = None,
             *, d_out: int | None = None, init_scale: float | None = None, use_bias: bool = False) -> dict:
    """Initialise multi-head attention parameters.

    Returns a dict with ``wq, wk``: ``(d_model, heads, key_size)``; ``wv``:
    ``(d_model, heads, value_size)``; ``wo``: ``(heads, value_size, d_out)``;
    and zero biases ``bq, bk, bv, bo`` when ``use_bias``.

    Weights are normal with standard deviation ``init_scale`` (default
    ``1/sqrt(fan_in)``: LeCun normal). A small explicit scale (e.g. 0.002, as
    in the in-context-learning chapter) makes tiny-init recipes reproducible.
    """
    for name, v in (("d_model", d_model), ("num_heads", num_heads), ("key_size", key_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    value_size = key_size if value_size is None else value_size
    d_out = d_model if d_out is None else d_out
    if not isinstance(value_size, int) or value_size < 1 or not isinstance(d_out, int) or d_out < 1:
        raise ValueError(f"value_size and d_out must be positive integers, got {value_size!r}, {d_out!r}")
    if init_scale is not None:
        _check_scale("init_scale", init_scale)
    kq, kk, kv, ko = jax.random.split(key, 4)

    def normal(k, shape, fan_in):
        std = init_scale if init_scale is not None else 1.0 / math.sqrt(fan_in)
        return std * jax.random.normal(k, shape, jnp.float32)

    p = {
        "wq": normal(kq, (d_model, num_heads, key_size), d_model),
        "wk": normal(kk, (d_model, num_heads, key_size), d_model),
        "wv": normal(kv, (d_model, num_heads, value_size), d_model),
        "wo": normal(ko, (num_heads, value_size, d_out), num_heads * value_size),
    }
    if use_bias:
        p.update(bq=jnp.zeros((num_heads, key_size)), bk=jnp.zeros((num_heads, key_size)),
                 bv=jnp.zeros((num_heads, value_size)), bo=jnp.zeros((d_out,)))
    return p


def attention_weights(q: jax.Array, k: jax.Array, *, softmax: bool = True, scaled: bool = True,
                      mask: jax.Array | None = None) -> jax.Array:
    """Attention weights from per-head queries and keys.

    Args:
        q: ``(..., n_q, heads, key_size)``; k: ``(..., n_kv, heads, key_size)``.
        softmax: normalise with a softmax over keys; otherwise return raw scores.
        scaled: divide scores by ``sqrt(key_size)``.
        mask: boolean, broadcastable to ``(..., heads, n_q, n_kv)``; ``False``
            entries get weight exactly 0 (a fully masked row gets all zeros).

    Returns:
        ``(..., heads, n_q, n_kv)``.
    """
    scores = jnp.einsum("...qhk,...nhk->...hqn", q, k)
    if scaled:
        scores = scores / jnp.sqrt(jnp.asarray(q.shape[-1], scores.dtype))
    if softmax:
        if mask is not None:
            scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        w = jax.nn.softmax(scores, axis=-1)
        if mask is not None:
            w = jnp.where(mask, w, 0.0)
        return w
    if mask is not None:
        scores = jnp.where(mask, scores, 0.0)
    return scores


def mha(params: dict, x: jax.Array, x_kv: jax.Array | None = None, *, softmax: bool = True,
        scaled: bool = True, mask: jax.Array | None = None):
    """Multi-head attention of queries ``x`` over keys/values ``x_kv`` (default: ``x`` itself).

    Args:
        params: from :func:`init_mha`.
        x: query tokens ``(..., n_q, d_model)``.
        x_kv: key/value tokens ``(..., n_kv, d_model)``; same leading dims as ``x``.
        softmax, scaled, mask: see :func:`attention_weights`.

    Returns:
        ``(out, weights)`` with ``out: (..., n_q, d_out)`` and
        ``weights: (..., heads, n_q, n_kv)``.

    Raises:
        ValueError: wrong ranks or feature sizes, or a mask that does not broadcast.
    """
    x_kv = x if x_kv is None else x_kv
    d_model = params["wq"].shape[0]
    for name, t in (("x", x), ("x_kv", x_kv)):
        if t.ndim < 2:
            raise ValueError(f"{name} must have shape (..., tokens, d_model), got {t.shape}")
        if t.shape[-1] != d_model:
            raise ValueError(f"{name} has {t.shape[-1]} features, params expect d_model={d_model}")
    if x.shape[:-2] != x_kv.shape[:-2]:
        raise ValueError(f"x and x_kv need the same leading dims, got {x.shape[:-2]} and {x_kv.shape[:-2]}")
    heads = params["wq"].shape[1]
    if mask is not None:
        target = x.shape[:-2] + (heads, x.shape[-2], x_kv.shape[-2])
        try:
            jnp.broadcast_shapes(mask.shape, target)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to {target}") from None
        if jnp.broadcast_shapes(mask.shape, target) != target:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to {target}")
    q = jnp.einsum("...nd,dhk->...nhk", x, params["wq"])
    k = jnp.einsum("...nd,dhk->...nhk", x_kv, params["wk"])
    v = jnp.einsum("...nd,dhv->...nhv", x_kv, params["wv"])
    if "bq" in params:
        q, k, v = q + params["bq"], k + params["bk"], v + params["bv"]
    w = attention_weights(q, k, softmax=softmax, scaled=scaled, mask=mask)
    heads_out = jnp.einsum("...hqn,...nhv->...qhv", w, v)
    out = jnp.einsum("...qhv,hvo->...qo", heads_out, params["wo"])
    if "bo" in params:
        out = out + params["bo"]
    return out, w


def init_layer_norm(d: int) -> dict:
    """Layer-norm parameters: ``scale`` (ones) and ``bias`` (zeros), each ``(d,)``."""
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}


def layer_norm(params: dict, x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Layer normalisation over the last axis."""
    if x.shape[-1] != params["scale"].shape[0]:
        raise ValueError(f"x has {x.shape[-1]} features, layer norm expects {params['scale'].shape[0]}")
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params["bias"]


def init_mlp(key: jax.Array, sizes: tuple[int, ...] | list[int], *, init_scale: float | None = None) -> list:
    """Dense layers ``sizes[0] -> sizes[1] -> ...``: a list of ``{"w", "b"}`` dicts (LeCun normal)."""
    if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be >= 2 positive integers, got {sizes!r}")
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:])):
        std = init_scale if init_scale is not None else 1.0 / math.sqrt(a)
        layers.append({"w": std * jax.random.normal(k, (a, b), jnp.float32), "b": jnp.zeros((b,), jnp.float32)})
    return layers


def mlp(layers: list, x: jax.Array, activation=jax.nn.gelu) -> jax.Array:
    """Apply :func:`init_mlp` layers with ``activation`` between them (none after the last)."""
    for i, layer in enumerate(layers):
        x = x @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            x = activation(x)
    return x


def init_block(key: jax.Array, d_model: int, num_heads: int, *, key_size: int | None = None,
               mlp_ratio: int = 4, use_bias: bool = True) -> dict:
    """Parameters of one transformer block: ``ln1``, ``attn``, ``ln2``, ``mlp``."""
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
    if key_size is None:
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}; pass key_size")
        key_size = d_model // num_heads
    ka, km = jax.random.split(key)
    return {
        "ln1": init_layer_norm(d_model),
        "attn": init_mha(ka, d_model, num_heads, key_size, use_bias=use_bias),
        "ln2": init_layer_norm(d_model),
        "mlp": init_mlp(km, (d_model, mlp_ratio * d_model, d_model)),
    }


def block(params: dict, x: jax.Array, x_kv: jax.Array | None = None, *, pre_ln: bool = True,
          softmax: bool = True, scaled: bool = True, mask: jax.Array | None = None):
    """One transformer block; returns ``(x, attention_weights)``.

    Pre-LN (``pre_ln=True``, ViT style)::

        x = x + Attn(LN(x), LN(x_kv));   x = x + MLP(LN(x))

    Post-LN (original transformer)::

        x = LN(x + Attn(x, x_kv));       x = LN(x + MLP(x))

    ``x_kv`` defaults to ``x``; pass extra tokens (e.g. memory tokens
    concatenated to ``x``) to attend over a larger key/value set.
    """
    kv = x if x_kv is None else x_kv
    if pre_ln:
        a, w = mha(params["attn"], layer_norm(params["ln1"], x), layer_norm(params["ln1"], kv),
                   softmax=softmax, scaled=scaled, mask=mask)
        x = x + a
        x = x + mlp(params["mlp"], layer_norm(params["ln2"], x))
    else:
        a, w = mha(params["attn"], x, kv, softmax=softmax, scaled=scaled, mask=mask)
        x = layer_norm(params["ln1"], x + a)
        x = layer_norm(params["ln2"], x + mlp(params["mlp"], x))
    return x, w
