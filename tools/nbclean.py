"""Strip outputs and normalise metadata of the book's notebooks (run before committing).

    python tools/nbclean.py            # clean every notebook under book/
    python tools/nbclean.py --check    # exit 1 if any notebook is not clean (used by the tests)

A clean notebook has no outputs, no execution counts, only the kernelspec,
language_info and (optionally) ``executable_papers`` in its metadata, and per cell only the metadata keys the book uses
(``tags``, ``mystnb``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
CELL_KEYS = {"tags", "mystnb"}


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "book").rglob("*.ipynb") if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)


def clean(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    keep = {k: v for k, v in nb.get("metadata", {}).items() if k == "executable_papers"}  # e.g. full-mode GPU runs
    nb["metadata"] = {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO, **keep}
    for cell in nb["cells"]:
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in CELL_KEYS}
        cell.pop("id", None)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report unclean notebooks, change nothing")
    ap.add_argument("paths", nargs="*", type=Path)
    args = ap.parse_args(argv)
    bad = []
    for path in args.paths or notebooks():
        text = path.read_text(encoding="utf-8")
        want = dumps(clean(json.loads(text)))
        if text != want:
            bad.append(path)
            if not args.check:
                path.write_text(want, encoding="utf-8")
    for p in bad:
        print(("not clean: " if args.check else "cleaned: ") + str(p))
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
