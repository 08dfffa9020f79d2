"""A small Vision Transformer with learnable memory tokens (Sandler et al., CVPR 2022).

The backbone is a standard pre-LN ViT (eq. 1 of the chapter)::

    z_0 = [x_cls, E x_1, ..., E x_N] + E_pos,   z_l = Block_l(z_{l-1}),   y = LN(z_L[0]) W_head

built from the shared :func:`jaxpapers.attention.block`. Fine-tuning with memory
adds, for every new task ``j``, a class token ``C_j``, per-layer memory tokens
``M_j^l`` (``m_j`` of them) and a head. Memory contributes keys and values only
(it is never a query, and it is not propagated to the next layer; eq. 2). The
Table-1 attention mask (:func:`memory_mask`) lets the old tokens (patches and the
original class token) see only old tokens, so the original model is untouched.

Two implementations of the masked model are given:

* :func:`forward_tasks` ("two-stream"): the old tokens run exactly the original
  computation graph (:func:`old_stream`), and each new class token attends over
  its own key set ``[old tokens, (earlier tasks' C and M,) C_j, M_j]``. Old-task
  logits are bit-identical to the original model's and a task's logits do not
  depend on which other tasks are present.
* :func:`forward_single_pass`: one masked softmax over all tokens, as Table 1
  draws it. Exact in exact arithmetic, but reductions over longer key sets round
  differently, so old logits move by ~1e-6 in float32.

Token order in the single pass: ``[CLS, patches (N), C_1..C_k]`` as queries and
``[CLS, patches, C_1..C_k, M_1..M_k]`` as keys/values.

Parameters are plain dicts. A task is ``{"cls": (D,), "memory": (depth, m, D),
"head": {"w": (D, classes), "b": (classes,)}}``; a list of tasks is a multi-task model.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxpapers.attention import block, init_block, init_layer_norm, layer_norm, mha, mlp

MODES = ("concat", "extend", "none")


def patchify(images: jax.Array, patch: int) -> jax.Array:
    """Cut images into non-overlapping ``patch × patch`` patches, row-major.

    Args:
        images: ``(..., H, W, C)`` (channel axis last, also for grey images).
        patch: patch side; must divide ``H`` and ``W``.

    Returns:
        ``(..., (H/patch)·(W/patch), patch·patch·C)``; patch ``(r, c)`` is row
        ``r·(W/patch) + c`` and holds its pixels row-major, channels last.
    """
    if not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive integer, got {patch!r}")
    if images.ndim < 3:
        raise ValueError(f"images must have shape (..., H, W, C), got {images.shape}")
    *lead, h, w, c = images.shape
    if h % patch or w % patch:
        raise ValueError(f"patch={patch} must divide the image size {h}×{w}")
    x = images.reshape(*lead, h // patch, patch, w // patch, patch, c)
    x = jnp.swapaxes(x, -4, -3)  # (..., h/p, w/p, p, p, c)
    return x.reshape(*lead, (h // patch) * (w // patch), patch * patch * c)


def init_vit(key: jax.Array, *, image_size: int = 28, patch: int = 7, channels: int = 1, dim: int = 48,
             depth: int = 3, heads: int = 4, mlp_ratio: int = 2, num_classes: int = 10) -> dict:
    """Initialise a pre-LN ViT.

    Returns a dict with ``embed`` (``w: (patch²·C, dim)``, ``b``), ``cls: (dim,)``,
    ``pos: (1 + N, dim)``, ``blocks`` (a list of ``depth`` shared-attention blocks),
    ``ln`` (final layer norm) and ``head`` (``w: (dim, classes)``, ``b``).
    """
    for name, v in (("image_size", image_size), ("patch", patch), ("channels", channels), ("dim", dim),
                    ("depth", depth), ("heads", heads), ("mlp_ratio", mlp_ratio), ("num_classes", num_classes)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if image_size % patch:
        raise ValueError(f"patch={patch} must divide image_size={image_size}")
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")
    n = (image_size // patch) ** 2
    p_in = patch * patch * channels
    ke, kc, kp, kb, kh = jax.random.split(key, 5)
    return {
        "embed": {"w": jax.random.normal(ke, (p_in, dim)) / math.sqrt(p_in), "b": jnp.zeros((dim,))},
        "cls": 0.02 * jax.random.normal(kc, (dim,)),
        "pos": 0.02 * jax.random.normal(kp, (1 + n, dim)),
        "blocks": [init_block(k, dim, heads, mlp_ratio=mlp_ratio) for k in jax.random.split(kb, depth)],
        "ln": init_layer_norm(dim),
        "head": init_head(kh, dim, num_classes),
    }


def init_head(key: jax.Array, dim: int, num_classes: int, scale: float = 0.0) -> dict:
    """Linear head ``{"w": (dim, classes), "b": (classes,)}``; zero weights by default (as in ViT)."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return {"w": scale * jax.random.normal(key, (dim, num_classes)), "b": jnp.zeros((num_classes,))}


def _config(params: dict):
    return len(params["blocks"]), params["pos"].shape[-1]


def init_task(key: jax.Array, params: dict, *, memory: int, num_classes: int, memory_std: float = 0.02) -> dict:
    """A new task: class token (a copy of the old one), ``memory`` tokens per layer, a zero head.

    Returns ``{"cls": (D,), "memory": (depth, memory, D) ~ N(0, memory_std²), "head": {...}}``.
    ``memory=0`` gives the *head + class token* baseline.
    """
    if not isinstance(memory, int) or memory < 0:
        raise ValueError(f"memory must be a non-negative integer, got {memory!r}")
    if not (isinstance(memory_std, (int, float)) and memory_std >= 0):
        raise ValueError(f"memory_std must be a non-negative number, got {memory_std!r}")
    depth, dim = _config(params)
    km, kh = jax.random.split(key)
    return {
        "cls": params["cls"],
        "memory": memory_std * jax.random.normal(km, (depth, memory, dim)),
        "head": init_head(kh, dim, num_classes),
    }


def embed(params: dict, images: jax.Array) -> jax.Array:
    """Token embeddings ``z_0 = [x_cls, E x_1, ..., E x_N] + E_pos`` (eq. 1): ``(batch, 1 + N, D)``.

    ``images``: ``(batch, H, W)`` (grey) or ``(batch, H, W, C)``; square images, the
    patch size follows from the parameters (``N`` patches of ``patch²·C`` pixels).
    """
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must have shape (batch, H, W) or (batch, H, W, C), square; got {images.shape}")
    n = params["pos"].shape[0] - 1
    per_side = int(round(math.sqrt(n)))
    patch = images.shape[1] // per_side
    if per_side * patch != images.shape[1] or patch * patch * images.shape[3] != params["embed"]["w"].shape[0]:
        raise ValueError(f"images of shape {images.shape} do not give {n} patches of the embedding's size")
    x = patchify(images, patch)
    tokens = x @ params["embed"]["w"] + params["embed"]["b"]
    cls = jnp.broadcast_to(params["cls"], (x.shape[0], 1, tokens.shape[-1]))
    return jnp.concatenate([cls, tokens], axis=1) + params["pos"]


def old_stream(params: dict, images: jax.Array):
    """Run the original ViT; return ``(inputs, z_L)``.

    ``inputs`` is the list of each block's input ``z_{l-1}`` (``depth`` arrays of shape
    ``(batch, 1 + N, D)``): what new tokens attend to, and what a fine-tuning run can
    cache because it never changes. ``z_L``: the final tokens.
    """
    z = embed(params, images)
    inputs = []
    for blk in params["blocks"]:
        inputs.append(z)
        z, _ = block(blk, z)
    return inputs, z


def readout(params: dict, head: dict, token: jax.Array) -> jax.Array:
    """Logits ``LN(token) W + b`` with the backbone's final layer norm; ``token: (batch, D)``."""
    return layer_norm(params["ln"], token) @ head["w"] + head["b"]


def forward(params: dict, images: jax.Array) -> jax.Array:
    """The original model: logits ``(batch, classes)`` from the final class token."""
    _, z = old_stream(params, images)
    return readout(params, params["head"], z[:, 0])


def _check_tasks(params: dict, tasks) -> None:
    depth, dim = _config(params)
    if not isinstance(tasks, (list, tuple)):
        raise ValueError(f"tasks must be a list of task dicts, got {type(tasks).__name__}")
    for j, t in enumerate(tasks):
        if set(t) != {"cls", "memory", "head"}:
            raise ValueError(f"tasks[{j}] must have keys cls, memory, head; got {sorted(t)}")
        if t["cls"].shape != (dim,):
            raise ValueError(f"tasks[{j}]['cls'] must have shape ({dim},), got {t['cls'].shape}")
        m = t["memory"]
        if m.ndim != 3 or m.shape[0] != depth or m.shape[2] != dim:
            raise ValueError(f"tasks[{j}]['memory'] must have shape ({depth}, m, {dim}), got {m.shape}")


def new_streams(params: dict, inputs, tasks, *, mode: str = "concat", memory_valid=None):
    """The new class tokens' computation (eq. 3), given the old stream's block inputs.

    At layer ``l`` task ``j``'s class token is the only query; its keys/values are
    ``[z_{l-1}, C_j, M_j^l]`` (``mode="concat"``) or ``[z_{l-1}, C_1..C_j, M_1^l..M_j^l]``
    (``mode="extend"``: earlier tasks are visible, later ones never are). All key
    tokens pass through the block's first layer norm.

    Args:
        inputs: list of ``depth`` arrays ``(batch, n_old, D)`` from :func:`old_stream`.
        tasks: list of task dicts (see :func:`init_task`).
        memory_valid: optional list (one per task) of boolean ``(m_j,)`` arrays; memory
            tokens marked ``False`` are masked out (lets runs with different effective
            ``m`` share one compiled program).

    Returns:
        list of final class-token states, ``(batch, D)`` per task.
    """
    if mode not in ("concat", "extend"):
        raise ValueError(f"mode must be 'concat' or 'extend', got {mode!r}")
    _check_tasks(params, tasks)
    if len(inputs) != len(params["blocks"]):
        raise ValueError(f"inputs must hold one array per block ({len(params['blocks'])}), got {len(inputs)}")
    if memory_valid is not None and len(memory_valid) != len(tasks):
        raise ValueError("memory_valid needs one boolean array per task")
    b, n_old, dim = inputs[0].shape
    c = [jnp.broadcast_to(t["cls"] + params["pos"][0], (b, dim)) for t in tasks]
    for l, blk in enumerate(params["blocks"]):
        new = []
        for j in range(len(tasks)):
            seen = list(range(j + 1)) if mode == "extend" else [j]
            cls_kv = jnp.stack([c[i] for i in seen], axis=1)
            mem_kv = jnp.concatenate([tasks[i]["memory"][l] for i in seen], axis=0)
            kv = jnp.concatenate([inputs[l], cls_kv, jnp.broadcast_to(mem_kv, (b,) + mem_kv.shape)], axis=1)
            mask = None
            if memory_valid is not None:
                mask = jnp.concatenate([jnp.ones((n_old + len(seen),), bool)]
                                       + [jnp.asarray(memory_valid[i], bool) for i in seen])
            out, _ = block(blk, c[j][:, None], kv, mask=mask)
            new.append(out[:, 0])
        c = new
    return c


def _keys_values(blk: dict, tokens: jax.Array):
    """Per-head keys and values of ``tokens`` (``(..., n, D)``) after the block's first layer norm."""
    a, h = blk["attn"], layer_norm(blk["ln1"], tokens)
    k = jnp.einsum("...nd,dhk->...nhk", h, a["wk"])
    v = jnp.einsum("...nd,dhv->...nhv", h, a["wv"])
    if "bk" in a:
        k, v = k + a["bk"], v + a["bv"]
    return k, v


def old_keys_values(params: dict, inputs):
    """The old tokens' per-layer keys and values, ``[(k_l, v_l)]`` with ``k_l: (batch, n_old, heads, key_size)``.

    They do not depend on any new task, so a fine-tuning run can compute them once for the
    whole dataset and hand them to :func:`class_stream`.
    """
    if len(inputs) != len(params["blocks"]):
        raise ValueError(f"inputs must hold one array per block ({len(params['blocks'])}), got {len(inputs)}")
    return [_keys_values(blk, z) for blk, z in zip(params["blocks"], inputs)]


def class_stream(params: dict, old_kv, task: dict, memory_valid=None) -> jax.Array:
    """One task's class-token state in concatenation mode, from precomputed old keys/values.

    The same function as ``new_streams(params, inputs, [task])`` (equal up to float rounding,
    not bit for bit): only the class token and the memory are projected at each layer, so a
    training step costs a fraction of recomputing the old tokens' keys and values. The class
    token's scores against the cached keys, its own key and the memory's keys enter one softmax,
    but the keys and values are never concatenated: a step does not copy the cache.

    Args:
        old_kv: from :func:`old_keys_values` (``depth`` pairs of ``(batch, n_old, heads, key_size)``).
        task: a task dict (see :func:`init_task`).
        memory_valid: optional boolean ``(m,)``; ``False`` slots are masked out.

    Returns:
        the final class-token state, ``(batch, D)``.
    """
    _check_tasks(params, [task])
    if len(old_kv) != len(params["blocks"]):
        raise ValueError(f"old_kv must hold one (k, v) pair per block ({len(params['blocks'])}), got {len(old_kv)}")
    b, n_old = old_kv[0][0].shape[:2]
    dim = params["pos"].shape[-1]
    m = task["memory"].shape[1]
    valid = jnp.ones((m,), bool) if memory_valid is None else jnp.asarray(memory_valid, bool)
    mask = jnp.concatenate([jnp.ones((n_old + 1,), bool), valid])
    c = jnp.broadcast_to(task["cls"] + params["pos"][0], (b, dim))
    for l, blk in enumerate(params["blocks"]):
        a = blk["attn"]
        q = jnp.einsum("bd,dhk->bhk", layer_norm(blk["ln1"], c), a["wq"])   # the one query per image
        if "bq" in a:
            q = q + a["bq"]
        k_o, v_o = old_kv[l]                                        # (b, n_old, heads, ks): cached
        k_c, v_c = _keys_values(blk, c)                             # (b, heads, ks)
        k_m, v_m = _keys_values(blk, task["memory"][l])             # (m, heads, ks): image-independent
        # Scores against the three key groups, one softmax over all of them. Never concatenating
        # the keys and values themselves avoids copying the cached ones at every step.
        scores = jnp.concatenate([jnp.einsum("bhk,bnhk->bhn", q, k_o), jnp.einsum("bhk,bhk->bh", q, k_c)[..., None],
                                  jnp.einsum("bhk,mhk->bhm", q, k_m)], axis=-1)
        scores = scores / jnp.sqrt(jnp.asarray(q.shape[-1], scores.dtype))
        w = jax.nn.softmax(jnp.where(mask, scores, jnp.finfo(scores.dtype).min), axis=-1)
        w = jnp.where(mask, w, 0.0)                                 # masked memory: weight exactly 0
        o = (jnp.einsum("bhn,bnhv->bhv", w[..., :n_old], v_o) + w[..., n_old, None] * v_c
             + jnp.einsum("bhm,mhv->bhv", w[..., n_old + 1:], v_m))
        out = jnp.einsum("bhv,hvo->bo", o, a["wo"])
        if "bo" in a:
            out = out + a["bo"]
        x = c + out
        c = x + mlp(blk["mlp"], layer_norm(blk["ln2"], x))
    return c


def forward_tasks(params: dict, tasks, images: jax.Array, *, mode: str = "concat"):
    """Two-stream multi-task forward: ``(old_logits, [logits of task j])``.

    The old tokens run :func:`old_stream` (the original graph, untouched); each task's
    class token follows :func:`new_streams`. One call serves any number of
    concatenated tasks; the old stream is computed once for all of them.
    """
    inputs, z = old_stream(params, images)
    states = new_streams(params, inputs, tasks, mode=mode)
    return readout(params, params["head"], z[:, 0]), [readout(params, t["head"], s) for t, s in zip(tasks, states)]


def memory_mask(n_old: int, memory_sizes, mode: str = "concat") -> jax.Array:
    """Table 1's attention mask (``True`` = may attend), rows = queries, columns = keys.

    Queries: ``n_old`` old tokens (CLS and patches), then one class token per task.
    Keys: the same tokens, then every task's memory (``memory_sizes[j]`` tokens each).
    Memory rows are absent: memory is never a query.

    * old rows see old columns only;
    * task ``j``'s row sees the old columns, ``C_j`` and ``M_j``;
    * ``mode="extend"`` also lets it see ``C_i`` and ``M_i`` of earlier tasks ``i < j``
      (Table 1's starred entries); ``"concat"`` does not;
    * ``mode="none"`` allows everything (unmasked memory: destructive).

    Returns:
        boolean ``(n_old + k, n_old + k + sum(memory_sizes))``.
    """
    if not isinstance(n_old, int) or n_old < 1:
        raise ValueError(f"n_old must be a positive integer, got {n_old!r}")
    sizes = list(memory_sizes)
    if any(not isinstance(m, int) or m < 0 for m in sizes):
        raise ValueError(f"memory_sizes must be non-negative integers, got {memory_sizes!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    k = len(sizes)
    n_q, n_kv = n_old + k, n_old + k + sum(sizes)
    if mode == "none":
        return jnp.ones((n_q, n_kv), bool)
    starts = [n_old + k + sum(sizes[:j]) for j in range(k)]
    rows = []
    for r in range(n_q):
        cols = jnp.arange(n_kv)
        allowed = cols < n_old
        if r >= n_old:
            j = r - n_old
            seen = range(j + 1) if mode == "extend" else [j]
            for i in seen:
                allowed = allowed | (cols == n_old + i) | ((cols >= starts[i]) & (cols < starts[i] + sizes[i]))
        rows.append(allowed)
    return jnp.stack(rows)


def forward_single_pass(params: dict, tasks, images: jax.Array, mask: jax.Array):
    """One masked softmax over all tokens (Table 1 as drawn): ``(old_logits, [task logits])``.

    Queries ``[CLS, patches, C_1..C_k]``; keys/values add every task's memory at each layer.
    ``mask``: boolean ``(1 + N + k, 1 + N + k + sum m_j)`` from :func:`memory_mask` (any
    mask of that shape, e.g. a deliberately broken one).
    """
    _check_tasks(params, tasks)
    z = embed(params, images)
    b, n_old, dim = z.shape
    k = len(tasks)
    n_mem = sum(t["memory"].shape[1] for t in tasks)
    if mask.shape != (n_old + k, n_old + k + n_mem):
        raise ValueError(f"mask must have shape {(n_old + k, n_old + k + n_mem)}, got {mask.shape}")
    cls = jnp.stack([t["cls"] + params["pos"][0] for t in tasks], axis=0) if k else jnp.zeros((0, dim))
    x = jnp.concatenate([z, jnp.broadcast_to(cls, (b, k, dim))], axis=1)
    for l, blk in enumerate(params["blocks"]):
        mem = jnp.concatenate([t["memory"][l] for t in tasks], axis=0) if k else jnp.zeros((0, dim))
        # attention.block with keys/values [x, memory], its first layer norm applied once to x
        # (queries and keys share it) and once to the memory (the same for every image)
        h, h_mem = layer_norm(blk["ln1"], x), layer_norm(blk["ln1"], mem)
        a, _ = mha(blk["attn"], h, jnp.concatenate([h, jnp.broadcast_to(h_mem, (b,) + h_mem.shape)], axis=1),
                   mask=mask)
        x = x + a
        x = x + mlp(blk["mlp"], layer_norm(blk["ln2"], x))
    return (readout(params, params["head"], x[:, 0]),
            [readout(params, t["head"], x[:, n_old + j]) for j, t in enumerate(tasks)])


def concat_tasks(*task_lists):
    """Merge separately fine-tuned task lists into one multi-task model (Fig. 3).

    Tasks keep their own leaves; run the result with :func:`forward_tasks`
    (``mode="concat"``) to evaluate every task in one inference.
    """
    merged = []
    for i, tl in enumerate(task_lists):
        if not isinstance(tl, (list, tuple)):
            raise ValueError(f"argument {i} must be a list of tasks, got {type(tl).__name__}")
        merged.extend(tl)
    if merged:
        shapes = {(t["memory"].shape[0], t["memory"].shape[2], t["cls"].shape) for t in merged}
        if len(shapes) != 1:
            raise ValueError(f"tasks come from different backbones (depth, dim): {sorted(shapes)}")
    return list(merged)


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))
