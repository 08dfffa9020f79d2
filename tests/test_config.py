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


def test_steps_outside_a_dry_run_is_pick(monkeypatch):
    monkeypatch.delenv("BOOK_DRY_RUN", raising=False)
    monkeypatch.setenv("BOOK_SCALE", "full")
    assert config.steps(fast=300, full=50_000) == 50_000
    monkeypatch.setenv("BOOK_SCALE", "fast")
    assert config.steps(fast=300, full=50_000) == 300


@pytest.mark.parametrize("fraction, expected", [(None, 2), ("0", 2), ("0.001", 50), ("0.5", 25_000), ("1", 50_000)])
def test_steps_in_a_dry_run_keep_a_fraction(monkeypatch, fraction, expected):
    monkeypatch.setenv("BOOK_SCALE", "full")
    monkeypatch.setenv("BOOK_DRY_RUN", "1")
    if fraction is None:
        monkeypatch.delenv("BOOK_DRY_FRACTION", raising=False)
    else:
        monkeypatch.setenv("BOOK_DRY_FRACTION", fraction)
    assert config.steps(fast=300, full=50_000) == expected
    assert config.steps(fast=1, full=1) == 1  # never longer than the loop itself
    f = float(fraction or 0)
    assert config.steps(fast=3, full=10, minimum=5) == min(10, max(5, round(10 * f)))


@pytest.mark.parametrize("env, value", [("BOOK_DRY_RUN", "maybe"), ("BOOK_DRY_FRACTION", "2"),
                                        ("BOOK_DRY_FRACTION", "half")])
def test_dry_run_settings_are_checked(monkeypatch, env, value):
    monkeypatch.setenv("BOOK_DRY_RUN", "1")
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=env):
        config.steps(fast=1, full=2)


@pytest.mark.parametrize("bad", [dict(fast=0, full=2), dict(fast=1, full=2.5), dict(fast=True, full=2),
                                 dict(fast=1, full=2, minimum=0)])
def test_steps_rejects_bad_lengths(bad):
    with pytest.raises(ValueError):
        config.steps(**bad)


def test_sized_is_smaller_only_in_the_cpu_dry_run(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "full")
    monkeypatch.delenv("BOOK_DRY_RUN", raising=False)
    monkeypatch.delenv("BOOK_DRY_FRACTION", raising=False)
    assert config.sized(fast=500, full=70_000, dry=2_000) == 70_000
    monkeypatch.setenv("BOOK_DRY_RUN", "1")
    assert config.sized(fast=500, full=70_000, dry=2_000) == 2_000        # the CPU dry run
    assert config.cpu_dry_run()
    monkeypatch.setenv("BOOK_DRY_FRACTION", "0.002")
    assert config.sized(fast=500, full=70_000, dry=2_000) == 70_000       # the probe keeps the full size
    assert not config.cpu_dry_run()
    monkeypatch.setenv("BOOK_SCALE", "fast")
    monkeypatch.setenv("BOOK_DRY_FRACTION", "0")
    assert config.sized(fast=500, full=70_000, dry=2_000) == 500          # never larger than the mode's size
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            config.sized(fast=bad, full=10, dry=1)
