"""Build a one-chapter book in a temporary folder (a quick `-W` check of one page).

    python tools/build_one.py book/01-icl-gd.ipynb [--keep DIR]

Copies _config.yml, book/references.bib, the local extension and the notebook (with
getting-started and a stub root page) into a fresh folder, writes a _toc.yml with just that chapter, and runs
`jupyter-book build -W -n --keep-going` there (so the repository's _build is untouched).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--keep", type=Path, help="build here instead of a temporary folder")
    args = ap.parse_args(argv)
    nb = args.notebook.resolve()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="jb-one-"))
    (work / "book").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml",):
        shutil.copy(ROOT / name, work / name)
    shutil.copy(ROOT / "book" / "references.bib", work / "book" / "references.bib")
    # a stub root page: the real intro links every chapter, which this build does not have
    (work / "book" / "intro.md").write_text("# One-chapter build\n\nSee {doc}`getting-started`.\n", encoding="utf-8")
    shutil.copytree(ROOT / "book" / "_ext", work / "book" / "_ext", dirs_exist_ok=True)
    shutil.copy(nb, work / "book" / nb.name)
    chapters = [nb.stem]
    if nb.stem != "getting-started":  # the intro links to it
        shutil.copy(ROOT / "book" / "getting-started.ipynb", work / "book" / "getting-started.ipynb")
        chapters.insert(0, "getting-started")
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(f"  - file: book/{c}\n" for c in chapters)
    (work / "_toc.yml").write_text(toc, encoding="utf-8")
    jb = Path(sys.executable).with_name("jupyter-book")
    print(f"building in {work}", flush=True)
    rc = subprocess.call([str(jb), "build", str(work), "-W", "-n", "--keep-going"])
    print(f"html: {work / '_build' / 'html' / 'book' / (nb.stem + '.html')}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
