"""Run a chapter's claims over many seeds and write the committed seed study.

    python tools/seed_study.py book/04-hypertransformer.ipynb --seeds 0-9
    python tools/seed_study.py book/04-hypertransformer.ipynb --seeds 0,3,7 --out /tmp/study.json

Each seed executes the whole notebook (fast mode unless ``BOOK_SCALE`` says otherwise) with
``BOOK_SEED=<seed>``, records every ledger row (``JAXPAPERS_CLAIMS_LOG``) and does not stop
at a failing rule (``JAXPAPERS_CLAIMS_ENFORCE=0``), so the study shows how often each rule
holds. The summary goes to ``lib/jaxpapers/studies/<chapter>.json`` (installed with the
package, so the chapter reads it with ``jaxpapers.claims.load_study``), with the command that
made it, the date, the JAX version and the machine. Chapters pin their tolerances to it;
rerun this command after changing a chapter's experiment and commit the new file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]``; ranges and lists mix."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"empty seed range {part!r}")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def run_seed(notebook: Path, seed: int, log: Path, timeout: int) -> tuple[bool, float, str]:
    """Execute ``notebook`` once under ``BOOK_SEED=seed``; return (ok, seconds, last error line)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(BOOK_SEED=str(seed), JAXPAPERS_CLAIMS_LOG=str(log), JAXPAPERS_CLAIMS_ENFORCE="0",
                      MPLBACKEND="Agg")
    start = time.time()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
        return True, time.time() - start, ""
    except Exception as err:  # a cell failed: keep what was logged, report the error
        return False, time.time() - start, str(err).strip().splitlines()[-1][:300]
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,7 (default 0-9)")
    ap.add_argument("--out", type=Path, help="default: lib/jaxpapers/studies/<chapter>.json")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = ap.parse_args(argv)

    from jaxpapers import claims

    nb_path = args.notebook.resolve()
    if not nb_path.is_file():
        raise SystemExit(f"{args.notebook} does not exist")
    seeds = parse_seeds(args.seeds)
    out = args.out or ROOT / "lib" / "jaxpapers" / "studies" / f"{nb_path.stem}.json"
    log = Path(tempfile.mkdtemp(prefix="seed-study-")) / "claims.jsonl"
    runs = []
    for seed in seeds:
        ok, seconds, error = run_seed(nb_path, seed, log, args.timeout)
        runs.append({"seed": seed, "completed": ok, "seconds": round(seconds, 1), "error": error})
        print(f"seed {seed}: {'ok' if ok else 'FAILED: ' + error} ({seconds:.0f} s)", flush=True)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    import jax

    study = {
        "chapter": nb_path.stem,
        "command": f"python tools/seed_study.py book/{nb_path.name} --seeds {args.seeds}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "scale": os.environ.get("BOOK_SCALE", "fast") or "fast",
        "runs": runs,
        "claims": claims.collect(rows),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(study, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for cid, e in study["claims"].items():
        print(f"  {cid:<24} n={e['n']:<3} estimate {e['min']:+.4g} .. {e['max']:+.4g}  "
              f"rule holds {e['passed']}/{e['n']}  control passes {e['control_passed']}/{e['n']}")
    return 0 if all(r["completed"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
