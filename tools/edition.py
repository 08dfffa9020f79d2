"""Student and instructor editions of the book.

    python tools/edition.py student OUT   # write a book source tree without solutions to OUT
    python tools/edition.py instructor OUT

The **instructor** edition is the book as committed: every solution is in it, and solution
code cells execute with the rest of the chapter.

The **student** edition removes, from every notebook:

* ``{solution}`` directive blocks in markdown cells (any fence: backticks or colons);
* gated solutions: every cell from a ``{solution-start}`` fence to its ``{solution-end}``
  (this is where solution *code* lives, as ordinary code cells);
* code cells tagged ``solution``;

and keeps the exercises, their scaffold cells (``answer = None  # your answer here``) and
the self-check cells (whose outputs it clears). Self-check reference cells (tag
``check-reference``) stay, collapsed (``jupyter.source_hidden``), because the checks need
them. The site of the student edition is built with sphinx-exercise's ``hide_solutions``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDITIONS = ("instructor", "student")
_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>solution(?:-start|-end)?)\}.*$")


def _lines(cell) -> list[str]:
    src = cell["source"]
    return ("".join(src) if isinstance(src, list) else src).splitlines(keepends=True)


def strip_solution_blocks(text: str) -> str:
    """Remove every ``{solution}`` directive block (fence included) from markdown text."""
    out, lines, i = [], text.splitlines(keepends=True), 0
    while i < len(lines):
        m = _OPEN.match(lines[i].rstrip("\n"))
        if m and m.group("name") == "solution":
            fence = m.group("fence")
            i += 1
            while i < len(lines) and lines[i].strip() != fence:
                i += 1
            i += 1  # skip the closing fence
            continue
        out.append(lines[i])
        i += 1
    return "".join(out)


def _gate(cell) -> str | None:
    """'start' / 'end' when a markdown cell holds a gated-solution fence, else None."""
    if cell["cell_type"] != "markdown":
        return None
    for line in _lines(cell):
        m = _OPEN.match(line.rstrip("\n"))
        if m and m.group("name") == "solution-start":
            return "start"
        if m and m.group("name") == "solution-end":
            return "end"
    return None


def is_self_check(cell) -> bool:
    """A code cell that calls the self-check ``check.check(...)`` (or a bare ``check(...)``); a
    ledger's ``ledger.check(...)`` records a claim and is not a self-check."""
    return cell["cell_type"] == "code" and re.search(
        r"(?:\bcheck\.check|(?<![\w.])check)\s*\(", "".join(_lines(cell))) is not None


def student_notebook(nb: dict) -> dict:
    """Return a copy of ``nb`` without solutions (see the module docstring)."""
    nb = json.loads(json.dumps(nb))
    cells, gated = [], False
    for cell in nb["cells"]:
        gate = _gate(cell)
        if gate == "start":
            if gated:
                raise ValueError("nested {solution-start} without {solution-end}")
            gated = True
            continue
        if gated:
            if gate == "end":
                gated = False
            continue
        if gate == "end":
            raise ValueError("{solution-end} without {solution-start}")
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            continue
        if cell["cell_type"] == "markdown":
            text = strip_solution_blocks("".join(_lines(cell)))
            if not text.strip():
                continue
            cell["source"] = text
        elif "check-reference" in tags:
            cell.setdefault("metadata", {}).setdefault("jupyter", {})["source_hidden"] = True
        if is_self_check(cell) and "check-reference" not in tags:
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    if gated:
        raise ValueError("{solution-start} without {solution-end}")
    nb["cells"] = cells
    return nb


def solution_texts(nb: dict) -> list[str]:
    """Every non-trivial line of solution text or code in ``nb`` that the chapter does not
    also show outside its solutions (to check that none leaks into the student edition).

    Independent of :func:`student_notebook`, so that it can test it."""
    found, public, gated = [], set(), False
    for cell in nb["cells"]:
        gate = _gate(cell)
        lines = _lines(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if gate == "start":
            gated = True
            continue
        if gated or "solution" in tags:
            if gate == "end":
                gated = False
                continue
            found += lines
            continue
        if cell["cell_type"] != "markdown":
            if "check-reference" not in tags:
                public.update(ln.strip() for ln in lines)
            continue
        inside, fence = False, None
        for line in lines:
            m = _OPEN.match(line.rstrip("\n"))
            if not inside and m and m.group("name") == "solution":
                inside, fence = True, m.group("fence")
            elif inside and line.strip() == fence:
                inside = False
            elif inside:
                found.append(line)
            else:
                public.add(line.strip())
    return [ln.strip() for ln in found
            if len(ln.strip()) >= 25 and not ln.strip().startswith((":", "`", "$$")) and ln.strip() not in public]


def write_edition(edition: str, out: Path, src: Path = ROOT) -> Path:
    """Write the book source tree of ``edition`` into ``out`` (config, toc, book/)."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "_toc.yml", out / "_toc.yml")
    cfg = (src / "_config.yml").read_text(encoding="utf-8")
    if edition == "student":
        cfg = cfg.replace("  config:\n", "  config:\n    hide_solutions: true  # student edition\n", 1)
        cfg = cfg.replace("title: Executable Papers", "title: Executable Papers (student edition)", 1)
    (out / "_config.yml").write_text(cfg, encoding="utf-8")
    if (out / "book").exists():
        shutil.rmtree(out / "book")
    shutil.copytree(src / "book", out / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    if edition == "student":
        for path in sorted((out / "book").rglob("*.ipynb")):
            nb = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("edition", choices=EDITIONS)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    print(write_edition(args.edition, args.out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
