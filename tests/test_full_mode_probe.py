"""The full-mode dry run and probe (tools/full_mode_probe.py), on a CPU at a tiny budget."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("full_mode_probe", ROOT / "tools" / "full_mode_probe.py")
probe_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe_tool)

SOURCE = """\
import time
from jaxpapers import claims, config
from jaxpapers.data import cifar
x_train, *_ = cifar.load_cifar("cifar10")       # a stand-in, never a download
steps = config.steps(fast=3, full=500)
for _ in range(steps):
    time.sleep(0.02)                            # 10 s of work at full length
ledger = claims.Ledger("probe-test")
ledger.check("fails_when_short", "a rule that a short run cannot meet", claims.at_least(steps, 400))
print(config.scale(), steps, ledger["fails_when_short"].verdict, x_train.shape)
"""


def _notebook(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": SOURCE.splitlines(keepends=True)}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 4}
    path = tmp_path / "99-probe.ipynb"
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


def test_projection_is_linear_in_the_fraction():
    # T(f) = 20 + f * 1000  ->  full run 1020 s
    out = probe_tool.project(20 + 0.01 * 1000, 20 + 0.03 * 1000, 0.01, 0.03)
    assert out["resolved"] and out["projected_s"] == pytest.approx(1020) and out["fixed_s"] == pytest.approx(20)
    flat = probe_tool.project(12.0, 11.0, 0.01, 0.03)
    assert not flat["resolved"] and flat["projected_s"] == 11.0
    with pytest.raises(ValueError):
        probe_tool.project(1, 2, 0.03, 0.01)
    with pytest.raises(ValueError):
        probe_tool.project(-1, 2, 0.0, 0.5)


def test_dry_run_executes_the_full_mode_path_offline(tmp_path):
    nb = _notebook(tmp_path)
    out = tmp_path / "records.json"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "full_mode_probe.py"), "--dry-run", str(nb),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chapters that ran: 1 of 1" in result.stdout
    rec = json.loads(out.read_text())["99-probe"]
    assert rec["ok"] and rec["report"]["platform"] == "cpu" and rec["report"]["max_rss_bytes"] > 0


def test_probe_projects_the_full_run_and_records_it(tmp_path):
    nb = _notebook(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "full_mode_probe.py"), str(nb), "--data", "tiny",
                             "--fractions", "0.1,0.9", "--write"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads(nb.read_text())["metadata"]["executable_papers"]["full_mode"]
    assert meta["kind"] == "projected from a probe" and meta["platform"] == "cpu" and meta["resolved"]
    # 500 steps of 20 ms: about 10 s of work at full length, whatever the start-up costs. The two runs'
    # start-ups differ by up to ~3 s on a loaded 2-core machine (work 16.8 s once, with fractions 0.2
    # and 0.6); fractions 0.1 and 0.9 put 8 s of work between the runs, so that noise moves the
    # projection by less than 4 s
    assert 6 < meta["work_s"] < 15, meta
    assert meta["projected_s"] > meta["work_s"]
    assert [r["ok"] for r in meta["runs"]] == [True, True]
    # the notebook stays clean (no outputs) and keeps its source
    cell = json.loads(nb.read_text())["cells"]
    assert len(cell) == 1 and cell[0]["outputs"] == []


def test_a_failing_chapter_fails_the_dry_run(tmp_path):
    nb = _notebook(tmp_path)
    data = json.loads(nb.read_text())
    data["cells"][0]["source"] = ["raise RuntimeError('broken full mode')\n"]
    nb.write_text(json.dumps(data))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "full_mode_probe.py"), "--dry-run", str(nb)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "broken full mode" in result.stdout and "chapters that ran: 0 of 1; failed: 99-probe.ipynb" in result.stdout


def test_error_line_names_the_error_not_the_rule_of_dashes():
    message = ("An error occurred while executing the following cell:\n------------------\nx = f()\n"
               "------------------\n\n\x1b[31mValueError\x1b[39m: bad size (3)\n-------------------\n")
    assert probe_tool._error_line(message) == "ValueError: bad size (3)"
    assert probe_tool._error_line("Kernel died") == "Kernel died"
    timeout = ("A cell timed out while it was being executed, after 30 seconds.\nThe message was: Cell execution "
               "timed out.\nHere is a preview of the cell contents:\n-------------------\n['x = slow()']\n"
               "-------------------\n")
    assert probe_tool._error_line(timeout).startswith("A cell timed out")
    assert probe_tool._error_line("") == "?"


def test_dry_run_side_by_side_reports_every_chapter(tmp_path):
    ok = _notebook(tmp_path)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _notebook(bad_dir).rename(bad_dir / "98-broken.ipynb")
    data = json.loads(bad.read_text())
    data["cells"][0]["source"] = ["raise RuntimeError('broken full mode')\n"]
    bad.write_text(json.dumps(data))
    out = tmp_path / "records.json"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "full_mode_probe.py"), "--dry-run", "--jobs", "2",
                             str(ok), str(bad), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "dry run 99-probe.ipynb: ok" in result.stdout and "broken full mode" in result.stdout
    assert "chapters that ran: 1 of 2; failed: 98-broken.ipynb" in result.stdout
    records = json.loads(out.read_text())
    assert records["99-probe"]["ok"] and records["99-probe"]["report"]["platform"] == "cpu"
    assert not records["98-broken"]["ok"]
    bad_jobs = subprocess.run([sys.executable, str(ROOT / "tools" / "full_mode_probe.py"), "--dry-run", "--jobs", "0",
                               str(ok)], capture_output=True, text=True, timeout=60)
    assert bad_jobs.returncode == 2 and "--jobs must be a positive integer" in bad_jobs.stderr
