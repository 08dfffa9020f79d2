"""Shared pytest setup.

The browser tests in ``tests/site/`` need a built site; they are collected only when
``--site DIR`` names one (``python3 tools/run.py site`` builds the book and passes it).
"""

from pathlib import Path


def pytest_addoption(parser):
    parser.addoption("--site", action="store", default=None,
                     help="built HTML site (e.g. _build/html) for the browser tests in tests/site/")
    parser.addoption("--student-site", action="store", default=None,
                     help="built student edition (its html folder) for tests/site/test_editions.py")
    parser.addoption("--check-log", action="store", default=None,
                     help="JAXPAPERS_CHECK_LOG file written while the notebooks ran")


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.name == "site" and collection_path.parent == Path(__file__).parent:
        return config.getoption("--site") is None
    return None


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_check_log_from_unit_tests(monkeypatch):
    """CI sets JAXPAPERS_CHECK_LOG to record the notebooks' self-checks; unit tests that call
    ``check`` with deliberately wrong answers must not land in that log."""
    monkeypatch.delenv("JAXPAPERS_CHECK_LOG", raising=False)
