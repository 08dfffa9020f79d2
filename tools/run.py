"""The book's task runner: needs only Python 3.10+ and pip.

    python3 tools/run.py book    # install (first time), then build the executed book into _build/html
    python3 tools/run.py test    # install (first time), then run every test: unit tests and all chapters
    python3 tools/run.py ci      # what CI runs: the tests, executing each notebook once, then the
                                 # book from those executed notebooks (no second execution)

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


def sh(*cmd, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


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


def build(execute: bool = True) -> None:
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    args = [BIN / "jupyter-book", "build", ".", "-W", "-n", "--keep-going"]
    if not execute:  # render the outputs already stored in the notebooks (CI, after nbmake --overwrite)
        cfg = (ROOT / "_config.yml").read_text().replace("execute_notebooks: force", "execute_notebooks: \"off\"")
        tmp = Path(tempfile.mkdtemp()) / "_config.yml"
        tmp.write_text(cfg)
        args += ["--config", tmp]
    sh(*args)
    print(f"\nThe book is in {ROOT / '_build' / 'html' / 'index.html'}")


def test(extra: list[str]) -> None:
    sh(BIN / "pytest", *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("book", "test", "ci"):
        print(__doc__)
        return 2
    task, extra = argv[0], argv[1:]
    ensure_venv()
    start = time.time()
    try:
        if task == "book":
            build(execute=True)
        elif task == "test":
            test(extra)
        else:
            test(["--overwrite", "--durations=0", *extra])  # executes every notebook once, keeping outputs
            build(execute=False)
            sh(BIN / "python", "tools/nbclean.py")  # leave the notebooks as committed
    except subprocess.CalledProcessError as err:
        return err.returncode or 1
    finally:
        print(f"{task}: {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
