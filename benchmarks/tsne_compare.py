"""Exact JAX t-SNE vs scikit-learn (Barnes-Hut and exact) and openTSNE, side by side.

    .venv/bin/python benchmarks/tsne_compare.py                 # digits (N = 1,797) and MNIST-1D (N = 10,000)
    .venv/bin/python benchmarks/tsne_compare.py --datasets digits --iters 1000

For each dataset and implementation it prints the wall time per 1,000 iterations and the
**exact** KL(P||Q) of the final embedding, all measured against the same affinities (ours:
entropic affinities at perplexity 30; dense P for N <= 3,000, k-NN P with k = 90 above),
so that approximate methods are judged by the objective they approximate, not by their own
estimate of it. scikit-learn's exact method is skipped above 3,000 points (O(N^2) memory
in float64 and very slow). openTSNE is used only if it is installed.

This is a script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpapers import affinities as aff
from jaxpapers import embed
from jaxpapers.data.images import load_digits
from jaxpapers.data.mnist1d import make_dataset

PERPLEXITY = 30.0


def load(name: str, n: int):
    if name == "digits":
        x, y = load_digits()
        return x.reshape(len(x), -1), y
    return make_dataset(n, seed=0)


def affinities(y):
    """Dense joint P for small N, padded k-NN P above 3,000 points."""
    if len(y) <= 3000:
        return aff.joint(aff.entropic_affinities(y, PERPLEXITY)[0])
    d, idx = aff.knn(y, int(3 * PERPLEXITY))
    p, _ = aff.entropic_affinities_knn(d, PERPLEXITY)
    return aff.joint_knn(idx, p)


def exact_kl(x, p) -> float:
    """KL(P||Q) of embedding x, exact (float64 dense for small N, float32 blocked above)."""
    x = np.asarray(x, np.float32)
    if isinstance(p, tuple):
        e, _, _ = embed.blocked_value_grad_pressure(jnp.asarray(x), *p, "tsne", block=1024)
        vals = np.asarray(p[1], np.float64)
        return embed.kl_from_objective(float(e), vals[vals > 0])
    p64 = np.asarray(p, np.float64)
    return embed.kl_from_objective(embed.objective_np(x, p64, "tsne"), p64)


def run_ours(y, p, iters):
    n = len(y)
    vg = embed.make_objective(p, "tsne")
    cfg = embed.TSNEConfig(learning_rate=max(n / 12, 50.0))
    x0 = 1e-4 * jax.random.normal(jax.random.PRNGKey(0), (n, 2))
    t0 = time.time()
    jax.block_until_ready(embed.tsne_gd(vg, x0, iters, cfg)[0])  # includes compilation
    t_first = time.time() - t0
    t0 = time.time()
    x, _ = embed.tsne_gd(vg, x0, iters, cfg)
    jax.block_until_ready(x)
    return x, time.time() - t0, t_first


def run_sklearn(y, iters, method):
    from sklearn.manifold import TSNE

    t0 = time.time()
    model = TSNE(2, perplexity=PERPLEXITY, method=method, max_iter=iters, init="random",
                 random_state=0, n_jobs=-1)
    x = model.fit_transform(np.asarray(y, np.float64))
    return x, time.time() - t0, float(model.kl_divergence_)


def run_opentsne(y, iters):
    import openTSNE

    t0 = time.time()
    x = openTSNE.TSNE(perplexity=PERPLEXITY, n_iter=max(iters - 250, 1), early_exaggeration_iter=250,
                      n_jobs=-1, random_state=0, verbose=False).fit(np.asarray(y, np.float64))
    return np.asarray(x), time.time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"], choices=["digits", "mnist1d"])
    ap.add_argument("--n-mnist1d", type=int, default=10_000)
    ap.add_argument("--iters", type=int, default=1000)
    args = ap.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()}; {args.iters} iterations each\n")
    header = f"{'dataset':9s}{'N':>7s}  {'implementation':24s}{'s / 1000 its':>13s}{'exact KL':>10s}  note"
    print(header)
    print("-" * len(header))
    for name in args.datasets:
        y, _ = load(name, args.n_mnist1d)
        n = len(y)
        p = affinities(y)
        scale = 1000 / args.iters

        def row(impl, secs, x, note=""):
            print(f"{name:9s}{n:7d}  {impl:24s}{secs * scale:13.2f}{exact_kl(x, p):10.4f}  {note}", flush=True)

        x, secs, first = run_ours(y, p, args.iters)
        row("ours: exact JAX", secs, x, f"first call incl. compile {first * scale:.1f} s")
        x, secs, kl_sk = run_sklearn(y, args.iters, "barnes_hut")
        row("sklearn Barnes-Hut", secs, x, f"its own KL estimate {kl_sk:.4f}; time incl. affinities")
        if n <= 3000:
            x, secs, kl_sk = run_sklearn(y, args.iters, "exact")
            row("sklearn exact", secs, x, f"its own KL {kl_sk:.4f}; time incl. affinities")
        try:
            x, secs = run_opentsne(y, args.iters)
            row("openTSNE (auto: BH/FFT)", secs, x, "time incl. affinities")
        except ImportError:
            print(f"{name:9s}{n:7d}  openTSNE not installed: skipped")


if __name__ == "__main__":
    main()
