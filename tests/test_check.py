import numpy as np
import pytest

from jaxpapers.check import check


def test_accepts_the_reference_and_hides_it(capsys):
    assert check("x", 6.06, 6.0606, rtol=0.01)
    out = capsys.readouterr().out
    assert "✅" in out and "6.06" not in out


@pytest.mark.parametrize(
    "answer, hint",
    [(None, "no answer"), (7.0, "not yet"), (-6.0606, "sign"), (6.2, "close"), ([1.0, 2.0], "shape"),
     (float("nan"), "NaN"), ("abc", "expected a number")],
)
def test_rejects_wrong_answers_with_a_hint(capsys, answer, hint):
    assert not check("x", answer, 6.0606, rtol=0.01)
    out = capsys.readouterr().out
    assert "❌" in out and hint in out and "6.0606" not in out


def test_arrays_and_strings():
    assert check("m", np.eye(2), np.eye(2))
    assert not check("m", np.eye(2) * 2, np.eye(2))
    assert check("s", "gd", "gd")
    assert not check("s", "adam", "gd")


@pytest.mark.parametrize("kwargs", [dict(rtol=-1), dict(atol=-1e-3)])
def test_bad_tolerances(kwargs):
    with pytest.raises(ValueError, match="tolerances"):
        check("x", 1.0, 1.0, **kwargs)


def test_needs_a_name():
    with pytest.raises(ValueError, match="name"):
        check("", 1.0, 1.0)


def test_calls_are_logged_when_asked(tmp_path, monkeypatch, capsys):
    import json

    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("JAXPAPERS_CHECK_LOG", str(log))
    check("a", [1.0, 2.0], np.array([1.0, 2.0]))
    check("b", None, 3.0)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0]["ok"] is True and rows[0]["reference"] == [1.0, 2.0]
    assert rows[1]["ok"] is False and rows[1]["answer"] is None


def test_nothing_is_logged_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXPAPERS_CHECK_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    check("a", 1.0, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_processes_logging_at_once_write_whole_lines(tmp_path):
    """Notebooks run in parallel share one log: every record stays one valid JSON line."""
    import json
    import os
    import subprocess
    import sys

    log = tmp_path / "checks.jsonl"
    code = ("import numpy as np\nfrom jaxpapers.check import check\n"
            "for i in range(20):\n    check(f'n{i}', np.arange(3000.0), np.arange(3000.0))\n")  # ~70 kB a record
    env = dict(os.environ, JAXPAPERS_CHECK_LOG=str(log))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 80 and all(r["ok"] and len(r["answer"]) == 3000 for r in rows)
