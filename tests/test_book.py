"""Repository-level checks: book configuration, notebook hygiene and chapter conventions."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys_tools = ROOT / "tools"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d-", p.name)]


def toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            yield from toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_files(item)


def load(nb_path):
    return json.loads(nb_path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under book/"


def test_failing_cells_fail_the_build():
    ex = CONFIG["execute"]
    assert ex["raise_on_error"] is True
    assert ex["allow_errors"] is False
    assert ex["execute_notebooks"] in ("force", "cache", "auto")
    assert ex["timeout"] <= 300


def test_exclude_patterns_keep_tooling_out_of_the_book():
    patterns = set(CONFIG["exclude_patterns"])
    for needed in (".*", "**/.*", "_build", ".venv", "lib", "tests", ".pytest_cache"):
        assert needed in patterns, needed


def test_repository_extensions_and_no_network_at_build_time():
    assert CONFIG["repository"]["branch"] == "main"
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["launch_buttons"]["colab_url"] and CONFIG["launch_buttons"]["binderhub_url"]
    ext = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx_exercise" in ext and "sphinx_togglebutton" in ext
    assert not any("intersphinx" in e for e in ext)
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()


def test_toc_and_notebooks_agree():
    listed = {TOC["root"], *toc_files(TOC)}
    for name in listed:
        assert any((ROOT / f"{name}{ext}").is_file() for ext in ("", ".md", ".ipynb")), f"{name} in _toc.yml does not exist"
    for nb in NOTEBOOKS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in listed, f"{nb} is not in _toc.yml"


def test_notebooks_are_committed_clean():
    result = subprocess.run([sys.executable, str(sys_tools / "nbclean.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_colab_bootstrap(nb_path):
    cell = code_cells(load(nb_path))[0]
    src = source(cell)
    url = f"jaxpapers @ git+{CONFIG['repository']['url']}@{CONFIG['repository']['branch']}"
    assert url in src, f"bootstrap URL must be {url!r}"
    assert 'find_spec("jaxpapers") is None' in src
    assert "remove-cell" in cell["metadata"].get("tags", [])
    assert not re.search(r"\b(jax|jaxlib|numpy)\s*[=<>~!]=?", src), "the bootstrap must never pin jax or numpy"
    assert "--upgrade" not in src and " -U " not in src


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_conventions(nb_path):
    nb = load(nb_path)
    text = "\n".join(source(c) for c in nb["cells"])
    code = "\n".join(source(c) for c in code_cells(nb))
    assert "config.scale()" in code and "SEED" in code, "setup cell: SEED and SCALE"
    assert "device_report()" in code
    assert "claims.Ledger(" in code and ".report()" in code, "claims are stated on the ledger (jaxpapers.claims)"
    assert "seeding.book_seed()" in code, "the seed is a parameter: SEED = seeding.book_seed()"
    assert re.search(r"paper", text, re.I) and re.search(r"ours", text, re.I), "paper vs. ours table"
    assert "explorer(" in code, "an ipywidgets explorer"
    assert "frames_player(" in code, "a kernel-free interactive figure"
    assert "{exercise}" in text and "{solution}" in text and ":class: dropdown" in text
    assert "check(" in code, "at least one self-check"
    assert "{footbibliography}" in text, "per-page references ({footcite} + {footbibliography})"
    assert "sys.path" not in code


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_has_a_committed_seed_study(nb_path):
    """Tolerances come from a seed study that tools/seed_study.py regenerates: one per chapter,
    made from more than one seed, whose claim ids are the chapter's ledger ids."""
    path = ROOT / "lib" / "jaxpapers" / "studies" / f"{nb_path.stem}.json"
    assert path.is_file(), f"no seed study: run tools/seed_study.py {nb_path.relative_to(ROOT)} --seeds 0-4"
    study = json.loads(path.read_text(encoding="utf-8"))
    assert len(study["runs"]) >= 2, f"{path.name}: a seed study needs at least two seeds"
    assert nb_path.name in study["command"]
    code = "\n".join(source(c) for c in code_cells(load(nb_path)))
    # a claim id appears in the code as a string (stated directly or through a loop of ids); smoke runs
    # may name themselves from their experiment's label
    unknown = sorted(cid for cid, e in study["claims"].items() if e["verdict"] != "smoke run"
                     and f'"{cid}"' not in code and f"'{cid}'" not in code)
    assert not unknown, f"{path.name} records claims the chapter no longer states: {unknown}; rerun the study"


# Words about how the book is made (issues, planning notes, development runs) do not belong on
# a page a reader sees.
PROCESS_WORDS = re.compile(
    r"\bthe issue'?s?\b|\bissue #?\d+|\bpaper sheets?\b|\btask sheets?\b|\bplanning\b|\bsheets?\b"
    r"|\bDEV_RUNS\b|\bdevelopment runs?\b|\bthe task asks\b|\bour sheet\b",
    re.I,
)
READER_PAGES = NOTEBOOKS + sorted((ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("page", READER_PAGES, ids=lambda p: p.name)
def test_reader_facing_pages_do_not_mention_our_process(page):
    if page.suffix == ".ipynb":
        text = "\n".join(source(c) for c in load(page)["cells"])
    else:
        text = page.read_text(encoding="utf-8")
    hits = sorted({m.group(0) for m in PROCESS_WORDS.finditer(text)})
    assert not hits, f"{page.name} speaks of our process, not to readers: {hits}"


def test_process_word_check_can_fail():
    assert PROCESS_WORDS.search("as the paper sheet says") and PROCESS_WORDS.search("DEV_RUNS = [")
    assert not PROCESS_WORDS.search("the paper's Table 2 reports 91.1")


def test_a_failing_cell_fails_the_build(tmp_path):
    """Build a one-page book whose only notebook raises: jupyter-book must exit non-zero."""
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        pytest.skip("jupyter-book is not installed in this environment")
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext")
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": ["raise RuntimeError('deliberate failure')"]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 4}
    (tmp_path / "book" / "fails.ipynb").write_text(json.dumps(nb))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/fails\n")
    result = subprocess.run([str(jb), "build", str(tmp_path), "-W", "-n"], capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    assert "deliberate failure" in result.stdout + result.stderr


def test_chapters_run_longest_first_and_every_notebook_has_a_place(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_tool", ROOT / "tools" / "run.py")
    run_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_tool)
    # every notebook of the book is ranked (a new chapter needs its place in the order) ...
    assert sorted(run_tool.LONGEST_FIRST) == sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))
    ordered = [Path(p).stem for p in run_tool.notebooks_longest_first(ROOT / "book")]
    assert ordered == list(run_tool.LONGEST_FIRST)
    # ... and one that is not (its time unknown) goes first
    for name in ("getting-started", "99-new", "03-memory-tokens"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [Path(p).stem for p in run_tool.notebooks_longest_first(tmp_path)] == [
        "99-new", "03-memory-tokens", "getting-started"]
