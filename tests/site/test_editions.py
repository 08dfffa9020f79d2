"""The built editions: no solution reaches the student site or its downloadable notebooks,
and every self-check accepts the reference solution and rejects a wrong answer."""

from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from jaxpapers import check as check_module

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("edition", ROOT / "tools" / "edition.py")
edition = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edition)
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.fixture(scope="module")
def student_site(request) -> Path:
    path = request.config.getoption("--student-site")
    if path is None:
        pytest.skip("no --student-site given (python3 tools/run.py ci builds one)")
    path = Path(path)
    assert (path / "index.html").is_file(), f"{path} is not a built site"
    return path


def visible_text(page: Path) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def normalise(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_site_and_notebooks_hold_no_solution(student_site, site_dir, nb_path):
    book = json.loads(nb_path.read_text(encoding="utf-8"))
    secrets = [normalise(s) for s in edition.solution_texts(book)]
    page = student_site / "book" / f"{nb_path.stem}.html"
    download = student_site / "_sources" / "book" / nb_path.name
    assert page.is_file() and download.is_file()
    page_text = normalise(visible_text(page))
    cells = json.loads(download.read_text(encoding="utf-8"))["cells"]
    # self-check reference cells stay, collapsed (see README, "Using the book for a course")
    notebook_text = json.dumps([c for c in cells if "check-reference" not in c.get("metadata", {}).get("tags", [])])
    assert 'class="solution' not in page.read_text(encoding="utf-8")
    for s in secrets:
        assert s not in page_text, f"solution text on the student page: {s!r}"
        assert json.dumps(s)[1:-1] not in notebook_text, f"solution text in the student notebook: {s!r}"
    if secrets:  # the instructor site does show them
        instructor = site_dir / "book" / f"{nb_path.stem}.html"
        assert 'class="solution' in instructor.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def check_log(request):
    path = request.config.getoption("--check-log")
    if path is None:
        pytest.skip("no --check-log given (python3 tools/run.py ci records one)")
    path = Path(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return rows


def wrong(answer):
    if isinstance(answer, str):
        return answer + "_wrong"
    if isinstance(answer, bool):
        return not answer
    a = np.asarray(answer, dtype=np.float64)
    return (a * 1.37 + 0.5).tolist()


def test_every_self_check_accepts_the_solution_and_rejects_a_wrong_answer(check_log, capsys):
    notebooks_with_checks = sum(
        any(edition.is_self_check(c) for c in json.loads(p.read_text())["cells"]) for p in NOTEBOOKS)
    assert len(check_log) >= notebooks_with_checks, "every notebook's self-checks ran and were logged"
    for row in check_log:
        assert row["ok"], f"self-check {row['name']!r} rejected the instructor edition's solution"
        assert row["answer"] is not None
        assert not check_module.check(row["name"], wrong(row["answer"]), row["reference"],
                                      rtol=row["rtol"], atol=row["atol"]), f"{row['name']!r} accepted a wrong answer"
