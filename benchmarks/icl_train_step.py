"""Time one training step of the 1-layer LSA (chapter 01) against a plain-NumPy reference.

    python benchmarks/icl_train_step.py [--batch 2048] [--steps 50]

Both sides do the same work per step: sample a batch of linear-regression tasks, run the
LSA layer of eq. (1) (context-only keys/values, no softmax, no scaling), take the gradient
of the query loss, clip it (global norm 1e-3) and apply Adam (lr 1e-3, b2 = 0.98), from the
authors' initialiser (``icl.init_lsa_fan_in``, VarianceScaling 0.002), as in the chapter. The JAX side is
``jaxpapers.train.make_step`` under ``jax.jit`` (steps chained in one ``lax.scan``); the
NumPy side is a Python loop over steps with a hand-written backward pass, vectorised over
the batch. The script first checks that the NumPy gradient equals ``jax.grad`` and then
prints milliseconds per step for both and their ratio. It is a script, not a test.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpapers import icl, train
from jaxpapers.tasks import sample_linear

N, DX, DY = 10, 10, 1
D = DX + DY


def numpy_tasks(rng, batch):
    w = rng.normal(size=(batch, DY, DX)).astype(np.float32)
    x = rng.uniform(-0.5, 0.5, size=(batch, N + 1, DX)).astype(np.float32)
    y = np.einsum("byx,bnx->bny", w, x)
    tokens = np.concatenate([x, y], axis=-1)
    targets = y[:, N].copy()
    tokens[:, N, DX:] = 0.0
    return tokens, targets


def numpy_loss_and_grad(p, tokens, targets):
    """Forward and hand-written backward of the 1-layer LSA query loss (single head)."""
    wq, wk, wv, wo = p["wq"][:, 0], p["wk"][:, 0], p["wv"][:, 0], p["wo"][0]
    ctx, eq = tokens[:, :N], tokens[:, N]
    q = eq @ wq                                   # (B, k)
    k = ctx @ wk                                  # (B, N, k)
    v = ctx @ wv                                  # (B, N, k)
    s = np.einsum("bk,bnk->bn", q, k)             # scores
    a = np.einsum("bn,bnk->bk", s, v)             # attended values
    out = a @ wo                                  # (B, D)
    pred = -out[:, DX:]
    err = pred - targets
    batch = tokens.shape[0]
    loss = 0.5 * np.sum(err**2) / batch
    g_out = np.zeros_like(out)
    g_out[:, DX:] = -err / batch
    g_wo = a.T @ g_out
    g_a = g_out @ wo.T
    g_s = np.einsum("bk,bnk->bn", g_a, v)
    g_v = s[:, :, None] * g_a[:, None, :]
    g_q = np.einsum("bn,bnk->bk", g_s, k)
    g_k = g_s[:, :, None] * q[:, None, :]
    grads = {"wq": (eq.T @ g_q)[:, None], "wk": np.einsum("bnd,bnk->dk", ctx, g_k)[:, None],
             "wv": np.einsum("bnd,bnk->dk", ctx, g_v)[:, None], "wo": g_wo[None]}
    return loss, grads


def numpy_train(p, steps, batch, lr=1e-3, b1=0.9, b2=0.98, eps=1e-9, clip=1e-3, seed=0, fixed=None):
    rng = np.random.default_rng(seed)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, steps + 1):
        tokens, targets = numpy_tasks(rng, batch) if fixed is None else fixed
        _, g = numpy_loss_and_grad(p, tokens, targets)
        norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))
        scale = min(1.0, clip / max(norm, 1e-30))
        for key in p:
            gk = g[key] * scale
            m[key] = b1 * m[key] + (1 - b1) * gk
            s[key] = b2 * s[key] + (1 - b2) * gk**2
            p[key] = p[key] - lr * (m[key] / (1 - b1**t)) / (np.sqrt(s[key] / (1 - b2**t)) + eps)
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    # 1. the NumPy gradient is the JAX gradient (at a generic point, where gradients are not tiny)
    generic = icl.init_lsa(jax.random.PRNGKey(0), D, init_scale=0.2)
    tokens, targets = numpy_tasks(np.random.default_rng(1), 64)
    loss_np, g_np = numpy_loss_and_grad({k: np.asarray(v) for k, v in generic.items()}, tokens, targets)
    loss_fn = lambda p: icl.regression_loss(icl.lsa_predict([p], jnp.asarray(tokens), N, DY), jnp.asarray(targets))
    loss_jx, g_jx = jax.value_and_grad(loss_fn)(generic)
    assert abs(loss_np - float(loss_jx)) < 1e-4 * abs(loss_np)
    for k in g_np:
        np.testing.assert_allclose(g_np[k], np.asarray(g_jx[k]), rtol=1e-3, atol=1e-6)
    print("NumPy backward pass matches jax.grad")

    # 2. JAX: steps in one lax.scan, compiled once, from the authors' initialiser
    params = icl.init_lsa_fan_in(jax.random.PRNGKey(0), D, scale=0.002)
    np_params = {k: np.asarray(v) for k, v in params.items()}
    tx = optax.chain(optax.clip_by_global_norm(1e-3), optax.adam(1e-3, b2=0.98, eps=1e-9))

    def task_loss(p, key):
        tok, tgt, _ = sample_linear(key, args.batch)
        return icl.regression_loss(icl.lsa_predict([p], tok, N, DY), tgt)

    run = jax.jit(lambda s: train.scan_fit(task_loss, tx, s, args.steps))
    state = train.init_state(params, tx, jax.random.PRNGKey(2))
    t0 = time.perf_counter()
    jax.block_until_ready(run(state))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(run(state))
    jax_ms = (time.perf_counter() - t0) / args.steps * 1e3

    # 3. NumPy loop reference
    t0 = time.perf_counter()
    numpy_train({k: v.copy() for k, v in np_params.items()}, args.steps, args.batch)
    np_ms = (time.perf_counter() - t0) / args.steps * 1e3

    # 4. the same without task sampling (one fixed batch): the model and optimiser only
    fixed = numpy_tasks(np.random.default_rng(3), args.batch)
    fixed_j = tuple(jnp.asarray(a) for a in fixed)
    fixed_loss = lambda p, key: icl.regression_loss(icl.lsa_predict([p], fixed_j[0], N, DY), fixed_j[1])
    run_fixed = jax.jit(lambda s: train.scan_fit(fixed_loss, tx, s, args.steps))
    jax.block_until_ready(run_fixed(state))
    t0 = time.perf_counter()
    jax.block_until_ready(run_fixed(state))
    jax_fixed_ms = (time.perf_counter() - t0) / args.steps * 1e3
    t0 = time.perf_counter()
    numpy_train({k: v.copy() for k, v in np_params.items()}, args.steps, args.batch, fixed=fixed)
    np_fixed_ms = (time.perf_counter() - t0) / args.steps * 1e3

    print(f"batch {args.batch}, {args.steps} steps, backend {jax.default_backend()}, JAX compile {compile_s:.1f} s")
    print(f"  with task sampling: JAX {jax_ms:.2f} ms/step | NumPy {np_ms:.2f} ms/step | "
          f"NumPy / JAX = {np_ms / jax_ms:.2f}x")
    print(f"  fixed batch:        JAX {jax_fixed_ms:.2f} ms/step | NumPy {np_fixed_ms:.2f} ms/step | "
          f"NumPy / JAX = {np_fixed_ms / jax_fixed_ms:.2f}x")


if __name__ == "__main__":
    main()
