"""The book's task runner: needs only Python 3.10+ and pip.

    python3 tools/run.py book    # install (first time), then build the executed book into _build/html
    python3 tools/run.py test    # install (first time), then run every test: unit tests and all chapters
    python3 tools/run.py site    # browser tests of the built site (builds it first if missing)
    python3 tools/run.py ci      # what CI runs (see .ci/run)

``BOOK_EDITION=student python3 tools/run.py book`` builds the student edition (no solutions,
on the site or in the downloadable notebooks); the default is the instructor edition.

The first call creates ``.venv`` and installs ``requirements.txt`` (pinned by
``constraints.txt``); later calls reinstall only when those files change.
Extra arguments after ``test`` go to pytest (e.g. ``tools/run.py test tests/``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".requirements-hash"
SITE = ROOT / "_build" / "html"
STUDENT_SITE = ROOT / "_build" / "student" / "_build" / "html"


def sh(*cmd, env=None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def ensure_venv() -> None:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "constraints.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    want = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    if not (BIN / "python").exists():
        sh(sys.executable, "-m", "venv", VENV)
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "-r", "requirements.txt")
    STAMP.write_text(want)


def edition() -> str:
    value = os.environ.get("BOOK_EDITION", "instructor").strip().lower() or "instructor"
    if value not in ("instructor", "student"):
        raise SystemExit(f"BOOK_EDITION={value!r}: expected 'instructor' or 'student'")
    return value


def build(*, execute: bool = True, which: str = "instructor", clean: bool = True) -> Path:
    """Build one edition with -W from a clean output folder; return its html folder."""
    if clean:
        shutil.rmtree(ROOT / "_build", ignore_errors=True)
    import importlib.util

    spec = importlib.util.spec_from_file_location("edition", ROOT / "tools" / "edition.py")
    edition_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edition_tool)
    write_edition = edition_tool.write_edition
    source = Path(tempfile.mkdtemp(prefix=f"book-{which}-"))
    write_edition(which, source)
    if execute:
        execute_notebooks(source / "book")
    # jupyter-book renders the outputs stored in the notebooks: executed just above, or by the tests (CI, after
    # nbmake --overwrite). Executing them here, several at a time, is what jupyter-book 1.x cannot do: its
    # "force" mode runs the chapters one after the other.
    cfg = source / "_config.yml"
    cfg.write_text(cfg.read_text().replace("execute_notebooks: force", 'execute_notebooks: "off"'))
    # jupyter-book writes to <path-output>/_build/html
    out = ROOT if which == "instructor" else ROOT / "_build" / "student"
    if which != "instructor":
        shutil.rmtree(out, ignore_errors=True)
    sh(BIN / "jupyter-book", "build", source, "--path-output", out, "-W", "-n", "--keep-going")
    shutil.rmtree(source, ignore_errors=True)
    html = out / "_build" / "html"
    print(f"\nThe {which} edition is in {html / 'index.html'}")
    return html


# The chapters by fast-mode time in CI (two at a time), longest first. pytest-xdist's "load" scheduling
# hands them out in this order as workers free up, so two workers finish at about the same time. In
# alphabetical order under "worksteal", one worker ran chapters 01-04 (817 s) while the other sat
# idle after 387 s: a worker's next chapter is already reserved and cannot be stolen.
LONGEST_FIRST = ("03-memory-tokens", "04-hypertransformer", "05-blur", "02-gradmax", "01-icl-gd",
                 "07-no-pressure", "06-underspecification", "getting-started")


def notebooks_longest_first(folder: Path) -> list[str]:
    """The notebooks directly in ``folder``: unlisted (new) ones first, then :data:`LONGEST_FIRST`'s order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    found = sorted(folder.glob("*.ipynb"))
    return [str(p) for p in sorted(found, key=lambda p: rank.get(p.stem, -1))]


def execute_notebooks(folder: Path) -> None:
    """Execute every notebook under ``folder`` in place, :func:`workers` at a time, longest first.

    The same executor as the tests (nbmake: 300 s per cell, the first error fails the command, as
    ``raise_on_error`` does in ``_config.yml``), writing each executed notebook back (``--overwrite``)."""
    test(["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(folder), "-p", "no:cacheprovider",
          "-o", "addopts=-ra", "--nbmake", "--nbmake-timeout=300", "--overwrite",
          *notebooks_longest_first(folder)], dist="load")


def workers() -> int:
    """pytest-xdist workers: $BOOK_TEST_WORKERS, else one per core up to 4 (a chapter holds a few GB)."""
    value = os.environ.get("BOOK_TEST_WORKERS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise SystemExit(f"BOOK_TEST_WORKERS={value!r}: expected a positive integer")
        return int(value)
    return max(1, min(4, os.cpu_count() or 1))


def test(extra: list[str], env=None, dist: str = "worksteal") -> None:
    """pytest over ``extra``, two or more tests at a time unless ``extra`` sets ``-n`` itself.

    Two chapters at a time on two cores take about half the wall time of one after the other
    (each chapter's own timing grows less than twofold: XLA does not keep both cores busy)."""
    n = workers()
    chosen = any(a.startswith(("-n", "--numprocesses")) for a in extra)
    parallel = ["-n", str(n), "--dist", dist] if n > 1 and not chosen else []
    sh(BIN / "pytest", *parallel, *extra, env=env)


def site_tests(extra: list[str]) -> None:
    sh(BIN / "pytest", "tests/site", "-o", "addopts=-ra", "--site", SITE, *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("book", "test", "site", "ci"):
        print(__doc__)
        return 2
    task, extra = argv[0], argv[1:]
    ensure_venv()
    start = time.time()
    try:
        if task == "book":
            build(execute=True, which=edition())
        elif task == "test":
            test(extra)
        elif task == "site":
            if not (SITE / "index.html").exists():
                build(execute=True)
            site_tests(extra)
        else:
            # 1. every test; each notebook executes once and keeps its outputs; self-checks are logged
            log = Path(tempfile.mkdtemp()) / "checks.jsonl"
            env = dict(os.environ, JAXPAPERS_CHECK_LOG=str(log))
            try:
                # unit tests first, then the chapters: --overwrite writes each executed notebook back
                # into book/, which the unit tests' hygiene checks (committed clean) must not see
                test(["--durations=20", "tests", *extra], env=env)
                test(["--overwrite", "--durations=20", *notebooks_longest_first(ROOT / "book"), *extra],
                     env=env, dist="load")
                # 2. both editions from those outputs (no second execution), then the browser tests
                build(execute=False, which="instructor")
                build(execute=False, which="student", clean=False)
                site_tests(["--student-site", str(STUDENT_SITE), "--check-log", str(log)])
                # 3. full mode's code path on this CPU: every chapter with BOOK_SCALE=full, two steps
                # per loop, stand-in data in the real file formats, claims recorded as "dry run"
                sh(BIN / "python", "tools/full_mode_probe.py", "--dry-run", "--jobs", str(workers()),
                   *notebooks_longest_first(ROOT / "book"))
            finally:
                sh(BIN / "python", "tools/nbclean.py")  # leave the notebooks as committed
    except subprocess.CalledProcessError as err:
        return err.returncode or 1
    finally:
        print(f"{task}: {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
