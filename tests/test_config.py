import pytest

from jaxpapers import config


@pytest.mark.parametrize("raw, expected", [(None, "fast"), ("", "fast"), ("fast", "fast"), ("full", "full"),
                                            (" FULL ", "full"), ("Fast", "fast")])
def test_scale_reads_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("BOOK_SCALE", raising=False)
    else:
        monkeypatch.setenv("BOOK_SCALE", raw)
    assert config.scale() == expected
    assert config.is_full() == (expected == "full")


@pytest.mark.parametrize("bad", ["medium", "fulll", "1", "gpu"])
def test_bad_scale_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("BOOK_SCALE", bad)
    with pytest.raises(ValueError, match="BOOK_SCALE") as err:
        config.scale()
    assert "fast" in str(err.value) and "full" in str(err.value)
    with pytest.raises(ValueError):
        config.pick(fast=1, full=2)


def test_pick_follows_scale(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "fast")
    assert config.pick(fast=1_500, full=50_000) == 1_500
    monkeypatch.setenv("BOOK_SCALE", "full")
    assert config.pick(fast=1_500, full=50_000) == 50_000


def test_device_report_names_jax_and_scale(monkeypatch):
    import jax

    monkeypatch.setenv("BOOK_SCALE", "fast")
    report = config.device_report()
    assert jax.__version__ in report and "scale fast" in report and jax.default_backend() in report
