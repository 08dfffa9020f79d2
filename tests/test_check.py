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
