"""Exact JAX t-SNE vs scikit-learn (Barnes-Hut and exact) and openTSNE, side by side.

    .venv/bin/python benchmarks/tsne_compare.py                       # digits (N = 1,797) and MNIST-1D (N = 10,000)
    .venv/bin/python benchmarks/tsne_compare.py --datasets digits --iters 300      # a short run
    .venv/bin/python benchmarks/tsne_compare.py --iters-large 500   # equal steps: timings and a fair KL column
    .venv/bin/python benchmarks/tsne_compare.py --library-defaults --iters-large 500   # the chapter's timing table
    .venv/bin/python benchmarks/tsne_compare.py --datasets digits --n-digits 300 --iters 300   # a quick check

For each dataset and implementation it prints the wall time and the process CPU time (all
threads; a fairer number on a shared machine) per 1,000 iterations of the optimiser alone
(affinities, set-up and JAX compilation excluded and reported in the note column; the CPU
time of scikit-learn includes its affinities, under 2 % of its wall time here) and the **exact** KL(P||Q) of the final embedding, every embedding scored by the same
function on the same P: ours, entropic affinities at perplexity 30 (64-step bisection),
P = (P_cond + P_cond^T) / 2N; dense for N <= ``--dense-max`` (scored in float64 by
``embed.objective_np``), k-NN with k = 90 above (scored by the library's blocked float32
evaluator, exact repulsion over all N^2 pairs). Approximate methods are judged by the
objective they approximate, not by their own estimate of it (printed in the note).

Every method starts from the same initial embedding, N(0, 1e-4^2) with seed 0, runs 250
iterations of early exaggeration 12 and then the rest at exaggeration 1, with momentum 0.5
then 0.8, and **the same effective step**: ours takes the learning rate N / 12 with the
gradient 4 L(A) X (the factor 4 included); scikit-learn's gradient is the same (checked:
its ``_kl_divergence`` against ``embed.value_and_grad`` agree to 1e-6), so it gets
``learning_rate = N / 12`` too; openTSNE's gradient omits the factor 4, so it gets
``4 N / 12 = N / 3``, and its per-step clipping (``max_step_norm = 5``) is switched off where
the installed version accepts that. Each library's own default ("auto") differs: scikit-learn's
is max(N / 48, 50) in our convention (3x smaller than ours at N = 1,797, 4x at N = 10,000),
openTSNE's is N / 12 during exaggeration and N / 4 afterwards in our convention; with
``--library-defaults`` every method runs with its defaults instead, and then the final KL
measures the step sizes as much as the implementations. Per-iteration times are comparable
either way. Each method builds its own P, and the column ``|P - P_ours|_1`` says how far
that P is from the one used for scoring (scikit-learn's P is rebuilt with its private
helpers and shown as "n/a" if they change). Like scikit-learn, which evaluates its KL every
50 iterations, ours evaluates the objective every 50 iterations (``energy_every``); the other
iterations compute the gradient alone. scikit-learn's exact method is skipped above
``--dense-max`` points (pure NumPy, O(N^2) float64 memory and a Python loop over points per
iteration) and cannot run fewer than 250 iterations. openTSNE is optional
(``pip install openTSNE``, or the ``bench`` extra); a row says so if it is missing.

When fewer than 1,000 iterations run, the per-1,000 time is extrapolated and the row says
EXTRAPOLATED: the exaggeration phase (250 its) is timed as run and the plain phase is scaled
from the plain iterations that ran to 750. For Barnes-Hut and FFT this is an under-estimate,
since their cost per iteration grows as the embedding keeps expanding; the exact cost per
iteration is constant. The KL of such a row is the KL after the iterations shown.

This is a script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxpapers import affinities as aff
from jaxpapers import embed
from jaxpapers.data.images import load_digits
from jaxpapers.data.mnist1d import make_dataset

PERPLEXITY = 30.0
EXAGGERATION, EXAGGERATION_ITERS = 12.0, 250
ENERGY_EVERY = 50  # scikit-learn's n_iter_check: it evaluates its KL every 50 iterations


def load(name: str, n: int, n_digits: int | None = None):
    if name == "digits":
        x, y = load_digits()
        x = x.reshape(len(x), -1)
        return (x, y) if n_digits is None else (x[:n_digits], y[:n_digits])
    return make_dataset(n, seed=0)


def our_affinities(y, dense_max):
    """Dense joint P (N, N) for small N, padded k-NN P ``(idx, val)`` (k = 90) above."""
    if len(y) <= dense_max:
        return aff.joint(aff.entropic_affinities(y, PERPLEXITY)[0])
    d, idx = aff.knn(y, int(3 * PERPLEXITY))
    p, _ = aff.entropic_affinities_knn(d, PERPLEXITY)
    return aff.joint_knn(idx, p)


def as_scipy(p, n):
    """Our P (dense or padded k-NN) as a float64 CSR matrix (padding entries are zero)."""
    if isinstance(p, tuple):
        idx, val = np.asarray(p[0]), np.asarray(p[1], np.float64)
        rows = np.repeat(np.arange(n), idx.shape[1])
        return sp.csr_matrix((val.ravel(), (rows, idx.ravel())), shape=(n, n))
    return sp.csr_matrix(np.asarray(p, np.float64))


def exact_kl(x, p) -> float:
    """KL(P||Q) of embedding x (N, 2) under our P: the one scoring function for every row."""
    x = np.asarray(x, np.float32)
    if isinstance(p, tuple):
        e, _, _ = embed.blocked_value_grad_pressure(jnp.asarray(x), *p, "tsne", block=1024)
        return embed.kl_from_objective(float(e), np.asarray(p[1], np.float64))
    p64 = np.asarray(p, np.float64)
    return embed.kl_from_objective(embed.objective_np(x, p64, "tsne"), p64)


def own_kl(v: float) -> str:
    """A library's own KL estimate as text ("n/a" when it did not compute one)."""
    return f"{v:.4f}" if np.isfinite(v) and abs(v) < 1e30 else "n/a"


def l1_to_ours(p_other, p_ours_csr) -> float:
    return float(abs(sp.csr_matrix(p_other) - p_ours_csr).sum())


class Timing(NamedTuple):
    """Optimiser wall time split into the exaggeration phase and the rest."""

    t_early: float
    its_early: int
    t_late: float
    its_late: int
    cpu: float  # process CPU seconds (all threads) of the optimiser call(s)

    def per_1000(self) -> tuple[float, float, bool]:
        """(wall s, CPU s) per 1,000 iterations (250 exaggerated + 750 plain), and whether extrapolated."""
        its = self.its_early + self.its_late
        wall = self.t_early + self.t_late
        if its >= 1000 or self.its_late == 0:
            per = wall * 1000 / its
        else:
            per = self.t_early * EXAGGERATION_ITERS / self.its_early + self.t_late * 750 / self.its_late
        return per, self.cpu * per / wall, its < 1000


def run_ours(p, x0, iters):
    """Our jitted t-SNE GD; compiled ahead of time so the timed call is the optimiser alone."""
    n = x0.shape[0]
    vg = embed.make_objective(p, "tsne")
    cfg = embed.TSNEConfig(learning_rate=our_learning_rate(n), exaggeration=EXAGGERATION,
                           exaggeration_steps=EXAGGERATION_ITERS)
    t0 = time.time()
    # the objective every ENERGY_EVERY iterations, as scikit-learn checks its KL (the update needs only the gradient)
    compiled = jax.jit(embed.tsne_gd, static_argnames=("steps", "cfg", "energy_every")).lower(
        vg, x0, steps=iters, cfg=cfg, energy_every=ENERGY_EVERY).compile()
    t_compile = time.time() - t0
    t0, c0 = time.time(), time.process_time()
    x, _ = compiled(vg, x0)
    jax.block_until_ready(x)
    secs, cpu = time.time() - t0, time.process_time() - c0
    # exact cost per iteration does not depend on the phase: split the time by iterations
    early = min(EXAGGERATION_ITERS, iters)
    return np.asarray(x), Timing(secs * early / iters, early, secs * (iters - early) / iters, iters - early, cpu), t_compile


_SK_CHUNK = re.compile(r"Iteration (\d+): error = .*\((\d+) iterations in ([0-9.]+)s\)")


def our_learning_rate(n: int) -> float:
    """Our step: N / 12 in the factor-4 gradient convention (the one scikit-learn shares)."""
    return max(n / 12, 50.0)


def run_sklearn(y, x0, iters, method, library_defaults=False):
    """scikit-learn TSNE; optimiser time summed from its own per-50-iteration timings.

    Its gradient has our convention (factor 4), so the same effective step is our rate.
    """
    from sklearn.manifold import TSNE

    iters = max(iters, 250)  # scikit-learn's minimum max_iter
    lr = "auto" if library_defaults else our_learning_rate(len(y))
    model = TSNE(2, perplexity=PERPLEXITY, method=method, max_iter=iters, init=np.asarray(x0, np.float64),
                 early_exaggeration=EXAGGERATION, learning_rate=lr, random_state=0, n_jobs=-1, verbose=2)
    buf = io.StringIO()
    t0, c0 = time.time(), time.process_time()
    with contextlib.redirect_stdout(buf):
        x = model.fit_transform(np.asarray(y, np.float64))
    total, cpu = time.time() - t0, time.process_time() - c0
    chunks = [(int(i), int(a), float(b)) for i, a, b in _SK_CHUNK.findall(buf.getvalue())]
    early = [c for c in chunks if c[0] <= EXAGGERATION_ITERS]
    late = [c for c in chunks if c[0] > EXAGGERATION_ITERS]
    timing = Timing(sum(c[2] for c in early), sum(c[1] for c in early),
                    sum(c[2] for c in late), sum(c[1] for c in late), cpu)
    return x, timing, total, float(model.kl_divergence_), int(model.n_iter_)


def sklearn_p(y, method):
    """scikit-learn's own joint P (private helpers of sklearn.manifold._t_sne), or None."""
    try:
        from sklearn.manifold import _t_sne
        from sklearn.metrics import pairwise_distances
        from sklearn.neighbors import NearestNeighbors

        y = np.asarray(y, np.float64)
        if method == "exact":
            cond = _t_sne._joint_probabilities(pairwise_distances(y, squared=True), PERPLEXITY, 0)
            from scipy.spatial.distance import squareform
            return squareform(cond)
        k = min(len(y) - 1, int(3.0 * PERPLEXITY + 1))
        g = NearestNeighbors(n_neighbors=k).fit(y).kneighbors_graph(mode="distance")
        g.data **= 2
        return _t_sne._joint_probabilities_nn(g, PERPLEXITY, 0)
    except Exception:  # private API: report "n/a" rather than fail the benchmark
        return None


def run_opentsne(y, x0, iters, method, library_defaults=False):
    """openTSNE; its gradient omits the factor 4, so the same effective step is 4x our rate."""
    import openTSNE

    t0 = time.time()
    affin = openTSNE.affinity.PerplexityBasedNN(np.asarray(y, np.float64), perplexity=PERPLEXITY,
                                                n_jobs=-1, random_state=0)
    t_aff = time.time() - t0
    early = min(EXAGGERATION_ITERS, iters)
    tsne = openTSNE.TSNE(perplexity=PERPLEXITY, early_exaggeration_iter=early, early_exaggeration=EXAGGERATION,
                         n_iter=iters - early, negative_gradient_method=method, n_jobs=-1, random_state=0)
    emb = tsne.prepare_initial(affinities=affin, initialization=np.asarray(x0, np.float64))
    if library_defaults:
        kw_early, kw_late = dict(momentum=tsne.initial_momentum), dict(momentum=tsne.final_momentum)
    else:
        lr = 4.0 * our_learning_rate(len(y))
        kw_early = dict(momentum=0.5, learning_rate=lr, max_step_norm=None)
        kw_late = dict(momentum=0.8, learning_rate=lr, max_step_norm=None)

    def optimize(n_iter, **kw):
        try:
            emb.optimize(n_iter=n_iter, inplace=True, **kw)
        except TypeError:  # a version without max_step_norm: keep its clipping, say so in the note
            kw.pop("max_step_norm", None)
            emb.optimize(n_iter=n_iter, inplace=True, **kw)

    t0, c0 = time.time(), time.process_time()
    optimize(early, exaggeration=EXAGGERATION, **kw_early)
    t_early = time.time() - t0
    kl = float("nan")
    t0 = time.time()
    if iters > early:
        optimize(iters - early, **kw_late)
        kl = float(emb.kl_divergence)
    timing = Timing(t_early, early, time.time() - t0, iters - early, time.process_time() - c0)
    return np.asarray(emb), timing, t_aff, kl, affin.P


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"], choices=["digits", "mnist1d"])
    ap.add_argument("--n-mnist1d", type=int, default=10_000)
    ap.add_argument("--n-digits", type=int, default=None, help="only the first N digits (a quick run)")
    ap.add_argument("--iters", type=int, default=1000, help="iterations for N <= --dense-max")
    ap.add_argument("--iters-large", type=int, default=None, help="iterations above --dense-max (default --iters)")
    ap.add_argument("--dense-max", type=int, default=3000, help="largest N with dense P and sklearn exact")
    methods = ["ours", "sklearn-bh", "sklearn-exact", "opentsne-bh", "opentsne-fft"]
    ap.add_argument("--methods", nargs="+", default=methods, choices=methods)
    ap.add_argument("--library-defaults", action="store_true",
                    help="each library's own learning rate and momentum instead of the same effective step")
    args = ap.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f} (1 min) at start")
    try:
        import openTSNE
        otsne = f"openTSNE {openTSNE.__version__}"
    except ImportError:
        otsne = "openTSNE not installed"
    import sklearn
    print(f"scikit-learn {sklearn.__version__}, {otsne}")
    print("steps: " + ("each library's defaults (KL then also measures the step sizes)" if args.library_defaults
                       else "the same effective step for every method (ours N/12, scikit-learn N/12, openTSNE N/3)")
          + "\n")
    header = (f"{'dataset':8s}{'N':>7s}  {'implementation':22s}{'its':>6s}{'wall s':>9s}{'CPU s':>9s}"
              f"{'exact KL':>10s}{'|P-P_ours|_1':>14s}  note")
    print(header)
    print("-" * len(header))
    for name in args.datasets:
        y, _ = load(name, args.n_mnist1d, args.n_digits)
        n = len(y)
        iters = args.iters if n <= args.dense_max else (args.iters_large or args.iters)
        t0 = time.time()
        p = our_affinities(y, args.dense_max)
        jax.block_until_ready(p)
        t_aff = time.time() - t0
        p_csr = as_scipy(p, n)
        x0 = np.asarray(1e-4 * jax.random.normal(jax.random.PRNGKey(0), (n, 2)), np.float32)

        def row(impl, timing, x, p_other=None, note=""):
            its = timing.its_early + timing.its_late
            secs, cpu, extrap = timing.per_1000()
            tag = "" if not extrap else "; EXTRAPOLATED to 1,000 its (KL after the its shown)"
            dist = "same" if p_other is None else ("n/a" if isinstance(p_other, str) else
                                                   f"{l1_to_ours(p_other, p_csr):.3f}")
            print(f"{name:8s}{n:7d}  {impl:22s}{its:6d}{secs:9.1f}{cpu:9.1f}{exact_kl(x, p):10.4f}"
                  f"{dist:>14s}  {note}{tag}", flush=True)

        def skip(impl, why):
            print(f"{name:8s}{n:7d}  {impl:22s}{'-':>6s}{'-':>9s}{'-':>9s}{'-':>10s}{'-':>14s}  skipped: {why}",
                  flush=True)

        if "ours" in args.methods:
            form = "dense P, row-blocked" if n <= args.dense_max else "k-NN P (k=90), blocked exact repulsion"
            x, timing, t_compile = run_ours(p, x0, iters)
            row("ours: exact JAX", timing, x, None, f"{form}; affinities {t_aff:.1f} s; compile {t_compile:.1f} s")
        for method in ("barnes_hut", "exact"):
            label = "sklearn-bh" if method == "barnes_hut" else "sklearn-exact"
            if label not in args.methods:
                continue
            impl = "sklearn Barnes-Hut" if method == "barnes_hut" else "sklearn exact"
            if method == "exact" and n > args.dense_max:
                skip(impl, "O(N^2) float64 memory and time in pure NumPy")
                continue
            x, timing, total, kl_own, n_it = run_sklearn(y, x0, iters, method, args.library_defaults)
            p_sk = sklearn_p(y, method)
            setup = total - timing.t_early - timing.t_late
            row(impl, timing, x, "n/a" if p_sk is None else p_sk,
                f"own KL {own_kl(kl_own)}; fit total {total:.1f} s (affinities+set-up {setup:.1f} s); n_iter_ {n_it}")
        for method in ("bh", "fft"):
            if f"opentsne-{method}" not in args.methods:
                continue
            impl = f"openTSNE {method.upper()}"
            try:
                x, timing, t_aff_o, kl_own, p_o = run_opentsne(y, x0, iters, method, args.library_defaults)
            except ImportError:
                skip(impl, "openTSNE not installed (pip install openTSNE)")
                continue
            row(impl, timing, x, p_o, f"own KL {own_kl(kl_own)}; affinities (Annoy k-NN, k=90) {t_aff_o:.1f} s")
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()
