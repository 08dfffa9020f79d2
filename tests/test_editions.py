"""The student edition removes every solution and keeps exercises and self-checks."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("edition", ROOT / "tools" / "edition.py")
edition = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edition)

NOTEBOOKS = sorted(p for p in (ROOT / "book").glob("*.ipynb"))


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": text,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}], "execution_count": 1}


def nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def test_strip_solution_blocks_handles_nested_fences_and_colons():
    text = ("before\n````{solution} ex1\n:class: dropdown\n\n```python\nsecret_code()\n```\n````\nafter\n"
            ":::{solution} ex2\nsecret text\n:::\nend\n")
    out = edition.strip_solution_blocks(text)
    assert out == "before\nafter\nend\n"


def test_gated_solutions_and_tagged_cells_are_removed():
    book = nb(md("```{exercise}\n:label: e\nDo it.\n```"), code("answer = None  # your answer here"),
              md("```{solution-start} e\n:class: dropdown\n```\nExplanation of the secret."),
              code("answer = secret_formula()"), md("More.\n```{solution-end}\n```"),
              code("hidden = 1", tags=["solution"]),
              code("_ref = 2", tags=["remove-cell", "check-reference"]),
              code("check.check('answer', answer, _ref)"))
    student = edition.student_notebook(book)
    sources = ["".join(c["source"]) for c in student["cells"]]
    assert sources == ["```{exercise}\n:label: e\nDo it.\n```", "answer = None  # your answer here",
                       "_ref = 2", "check.check('answer', answer, _ref)"]
    assert student["cells"][2]["metadata"]["jupyter"]["source_hidden"] is True
    assert student["cells"][3]["outputs"] == []  # the instructor's verdict is not shipped


@pytest.mark.parametrize("cells", [
    [md("```{solution-start} e\n```")],
    [md("```{solution-end}\n```")],
    [md("```{solution-start} e\n```"), md("```{solution-start} f\n```")],
])
def test_unbalanced_gates_are_errors(cells):
    with pytest.raises(ValueError):
        edition.student_notebook(nb(*cells))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_reaches_a_student_notebook(path):
    book = json.loads(path.read_text(encoding="utf-8"))
    student = edition.student_notebook(book)
    # Self-check reference cells stay (collapsed) because the checks need them; they may
    # compute the reference the way the solution does (README: "Using the book for a course").
    shown = [c for c in student["cells"] if "check-reference" not in c.get("metadata", {}).get("tags", [])]
    text = json.dumps(shown)
    secrets = edition.solution_texts(book)
    for line in secrets:
        assert json.dumps(line)[1:-1] not in text, f"solution text leaked: {line!r}"
    exercises = lambda n: sum("{exercise}" in "".join(c["source"]) for c in n["cells"])  # noqa: E731
    assert exercises(student) == exercises(book)
    checks = lambda n: sum(edition.is_self_check(c) for c in n["cells"])  # noqa: E731
    assert checks(student) == checks(book)
    if re.search(r"\{solution", json.dumps(book)):
        assert secrets, "a notebook with solutions must have solution text to protect"
        assert "{solution" not in json.dumps(student)


def test_write_edition_sets_hide_solutions(tmp_path):
    edition.write_edition("student", tmp_path / "s")
    cfg = (tmp_path / "s" / "_config.yml").read_text()
    assert "hide_solutions: true" in cfg and "(student edition)" in cfg
    edition.write_edition("instructor", tmp_path / "i")
    assert "hide_solutions" not in (tmp_path / "i" / "_config.yml").read_text()
    with pytest.raises(ValueError):
        edition.write_edition("teacher", tmp_path / "t")
