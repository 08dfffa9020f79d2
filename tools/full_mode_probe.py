"""Full mode that is known to run: the CPU dry run, and the probe that projects full-mode runtimes.

    python tools/full_mode_probe.py --dry-run --jobs 2         # CI: every chapter's full-mode path, a few steps each
    python tools/full_mode_probe.py --write                    # on a GPU: probe every chapter, record the projection
    python tools/full_mode_probe.py book/04-hypertransformer.ipynb --fractions 0.002,0.006

Both execute a chapter with ``BOOK_SCALE=full BOOK_DRY_RUN=1``: the full-mode configuration
and code path, with every loop length that comes from ``jaxpapers.config.steps`` cut to a
fraction ``BOOK_DRY_FRACTION`` of its full value (at least two steps), the claims recorded
on the ledger as *dry run* instead of asserted, and every downloaded dataset replaced by a
stand-in in the real file format (``jaxpapers.data.standins``, in a temporary
``JAXPAPERS_CACHE``), so nothing is downloaded.

``--dry-run`` runs each chapter once at fraction 0 with tiny stand-ins: it shows that the
whole full-mode path executes (CI runs it on a CPU).

The probe runs each chapter at two fractions ``f1 < f2`` with full-size stand-ins (the real
datasets' sizes, so that an epoch has the real number of steps). A chapter's wall time is
``T(f) = fixed + f * W``: ``fixed`` is start-up, data, compilation and evaluation, ``W`` the
work of every loop at full length, so the projected full-mode wall time is
``T(f1) + (1 - f1) (T(f2) - T(f1)) / (f2 - f1)``. It also records peak device memory (the
accelerator's ``memory_stats``; the process's peak resident memory on a CPU). ``--write``
stores the record in the notebook's metadata (``executable_papers.full_mode``, marked
*projected from a probe*, with device, date and JAX version); the claims board and the
chapter's status row show it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "JAXPAPERS_PROBE "
REPORT_CELL = """\
import json as _json, resource as _resource, jax as _jax
_dev = _jax.devices()[0]
_stats = (_dev.memory_stats() if hasattr(_dev, "memory_stats") else None) or {}
print("%s" + _json.dumps({"device": _dev.device_kind, "platform": _dev.platform, "jax": _jax.__version__,
      "peak_device_bytes": _stats.get("peak_bytes_in_use"),
      "max_rss_bytes": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss * 1024}))
""" % MARK


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("[0-9][0-9]-*.ipynb"))


def project(t1: float, t2: float, f1: float, f2: float) -> dict:
    """Projected full-mode seconds from the wall times ``t1, t2`` at fractions ``f1 < f2``.

    Returns ``{"projected_s", "fixed_s", "work_s", "resolved"}``; when ``t2 <= t1`` (the loops
    are too short to time) the projection is ``t2`` and ``resolved`` is ``False``.

    Raises:
        ValueError: fractions not in ``0 <= f1 < f2 <= 1`` or negative times.
    """
    if not 0 <= f1 < f2 <= 1:
        raise ValueError(f"need 0 <= f1 < f2 <= 1, got {f1}, {f2}")
    if t1 < 0 or t2 < 0:
        raise ValueError(f"times must be >= 0, got {t1}, {t2}")
    if t2 <= t1:
        return {"projected_s": t2, "fixed_s": t2, "work_s": 0.0, "resolved": False}
    work = (t2 - t1) / (f2 - f1)
    fixed = t1 - f1 * work
    return {"projected_s": t1 + (1 - f1) * work, "fixed_s": fixed, "work_s": work, "resolved": True}


def _error_line(message: str) -> str:
    """The line of a cell error that names it (``ValueError: ...``), ANSI colours removed; else the last line."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in message.strip().splitlines()]
    lines = [ln for ln in lines if ln and set(ln) != {"-"}]
    named = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt)\b", ln)
             or ln.startswith(("A cell timed out", "Kernel died"))]
    return ((named or lines or ["?"])[-1])[:400]


def execute(notebook: Path, env: dict, timeout: int) -> dict:
    """Run ``notebook`` under ``env``; return wall seconds, success, the device report, the error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    saved = dict(os.environ)
    os.environ.update(env)
    start = time.time()
    error = ""
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except Exception as err:  # report the error line (nbclient's message ends with a rule of dashes)
        error = _error_line(str(err))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.time() - start
    report = {}
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith(MARK):
                report = json.loads(line[len(MARK):])
    return {"seconds": round(seconds, 1), "ok": not error, "error": error, "report": report}


def dry_env(cache: Path, fraction: float) -> dict:
    return {"BOOK_SCALE": "full", "BOOK_DRY_RUN": "1", "BOOK_DRY_FRACTION": repr(fraction),
            "JAXPAPERS_CACHE": str(cache), "MPLBACKEND": "Agg"}


def probe(notebook: Path, cache: Path, fractions: tuple[float, float], timeout: int) -> dict:
    """Two dry runs of ``notebook`` and the projection from them."""
    runs = [execute(notebook, dry_env(cache, f), timeout) for f in fractions]
    record = {"kind": "projected from a probe", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "fractions": list(fractions), "runs": [{k: r[k] for k in ("seconds", "ok", "error")} for r in runs]}
    rep = runs[-1]["report"] or runs[0]["report"]
    record.update(device=rep.get("device", "?"), platform=rep.get("platform", "?"), jax=rep.get("jax", "?"))
    peaks = [r["report"].get("peak_device_bytes") for r in runs if r["report"].get("peak_device_bytes")]
    rss = [r["report"].get("max_rss_bytes") for r in runs if r["report"].get("max_rss_bytes")]
    if peaks:
        record["peak_device_memory_mib"] = round(max(peaks) / 2**20)
    if rss:
        record["peak_host_memory_mib"] = round(max(rss) / 2**20)
    if all(r["ok"] for r in runs):
        record.update({k: (round(v, 1) if isinstance(v, float) else v)
                       for k, v in project(runs[0]["seconds"], runs[1]["seconds"], *fractions).items()})
    return record


def write_record(notebook: Path, record: dict) -> None:
    """Store ``record`` as the notebook's ``executable_papers.full_mode`` (outputs untouched)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {}).setdefault("executable_papers", {})["full_mode"] = record
    # the layout tools/nbclean.py writes
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _dry_runs_side_by_side(notebooks: list[Path], args) -> dict:
    """Dry runs of ``notebooks``, ``args.jobs`` at a time, each in a process of its own (a run sets
    the environment of its process); returns ``{notebook: record}``."""
    from concurrent.futures import ThreadPoolExecutor

    def one(nb: Path) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "record.json"
            done = subprocess.run([sys.executable, __file__, "--dry-run", "--timeout", str(args.timeout),
                                   "--out", str(out), str(nb)], capture_output=True, text=True)
            if out.exists():
                return json.loads(out.read_text())[nb.stem]
            return {"seconds": 0.0, "ok": False, "report": {},
                    "error": f"exit status {done.returncode}: {_error_line(done.stdout + done.stderr)}"}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return dict(zip(notebooks, pool.map(one, notebooks)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    ap.add_argument("--dry-run", action="store_true", help="one run per chapter at fraction 0, tiny data")
    ap.add_argument("--fractions", default="0.002,0.006", help="the probe's two fractions f1,f2")
    ap.add_argument("--data", choices=("tiny", "full"), help="stand-in size (default: tiny for --dry-run, else full)")
    ap.add_argument("--write", action="store_true", help="record the projection in each notebook's metadata")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--out", type=Path, help="also write every record to this JSON file")
    ap.add_argument("--jobs", type=int, default=1, help="dry run: chapters executed side by side (default 1)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be a positive integer, got {args.jobs}")

    from jaxpapers.data import standins

    notebooks = [p.resolve() for p in args.notebooks] or chapters()
    size = args.data or ("tiny" if args.dry_run else "full")
    cache = Path(tempfile.mkdtemp(prefix="jaxpapers-standins-"))
    t0 = time.time()
    standins.write_standins(cache, size=size)
    print(f"stand-in datasets ({size}) in {cache}: {time.time() - t0:.0f} s", flush=True)
    records, failed = {}, []
    side_by_side = _dry_runs_side_by_side(notebooks, args) if args.dry_run and args.jobs > 1 else {}
    for nb in notebooks:
        if args.dry_run:
            run = side_by_side.get(nb) or execute(nb, dry_env(cache, 0.0), args.timeout)
            records[nb.stem] = run
            status = "ok" if run["ok"] else f"FAILED: {run['error']}"
            print(f"dry run {nb.name}: {status} ({run['seconds']:.0f} s)", flush=True)
        else:
            f1, f2 = (float(x) for x in args.fractions.split(","))
            rec = probe(nb, cache, (f1, f2), args.timeout)
            records[nb.stem] = rec
            ok = all(r["ok"] for r in rec["runs"])
            if ok:
                print(f"probe {nb.name}: projected {rec['projected_s']:.0f} s on {rec['device']} "
                      f"(fixed {rec['fixed_s']:.0f} s; runs {[r['seconds'] for r in rec['runs']]} s at "
                      f"fractions {rec['fractions']}; peak device memory {rec.get('peak_device_memory_mib', '-')} MiB)",
                      flush=True)
                if args.write:
                    write_record(nb, rec)
            else:
                print(f"probe {nb.name}: FAILED: {[r['error'] for r in rec['runs'] if r['error']]}", flush=True)
        if not all(r["ok"] for r in records[nb.stem].get("runs", [records[nb.stem]])):
            failed.append(nb.name)
    if args.out:
        args.out.write_text(json.dumps(records, indent=1) + "\n")
    # not pytest's "N passed, N failed" closing line: CI's log is judged by its test runners' lines
    print(f"chapters that ran: {len(notebooks) - len(failed)} of {len(notebooks)}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"total {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
