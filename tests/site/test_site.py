"""What a reader of the published site sees, checked in a real (headless) browser.

For every page built from a notebook: no console errors from our own assets, no error or
traceback in any cell output, every figure present and non-empty with an opaque background
(readable in dark mode), the kernel-free frame players respond to input, and the Colab and
Binder buttons point at this notebook on the configured repository and branch. Light- and
dark-mode screenshots are saved under ``_build/screenshots/`` as test artifacts.
"""

from __future__ import annotations

import contextlib

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
NOTEBOOKS = sorted(p.relative_to(ROOT).with_suffix("") for p in (ROOT / "book").glob("*.ipynb"))
REPO = urlparse(CONFIG["repository"]["url"]).path.strip("/")
BRANCH = CONFIG["repository"]["branch"]


@contextlib.contextmanager
def opened(browser, base_url, page_path, color_scheme="light"):
    """Open a page, collecting errors from our own assets; yield ``(page, problems)``, then close it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
    problems = []

    def on_console(msg):
        if msg.type == "error":
            problems.append(f"console: {msg.text} @ {msg.location.get('url', '')}")

    def on_failed(request):
        if request.url.startswith(base_url):  # only our own assets; CDNs are unreachable offline
            problems.append(f"failed request: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", on_failed)
    page.goto(f"{base_url}/{page_path}.html", wait_until="load")
    own = [p for p in problems if base_url in p or p.startswith(("page error", "failed request"))]
    try:
        yield page, own
    finally:
        page.close()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_page_loads_cleanly_with_figures_and_no_errors(browser, base_url, artifacts, nb):
    with opened(browser, base_url, nb.as_posix()) as (page, problems):
        assert not problems, problems
        assert page.locator("main h1").count() >= 1
        # no error output in any cell
        assert page.locator(".cell_output .traceback, .cell_output .output.error").count() == 0
        text = page.locator("main").inner_text()
        assert "Traceback (most recent call last)" not in text
        # every figure present, decoded and non-empty, with an opaque corner pixel
        images = page.locator(".cell_output img")
        assert images.count() >= 1, "a chapter page shows at least one figure"
        stats = page.evaluate(
            """() => Array.from(document.querySelectorAll('.cell_output img')).map(img => {
                if (!img.complete || img.naturalWidth === 0) return {ok: false, src: img.src.slice(0, 80)};
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                const corner = ctx.getImageData(1, 1, 1, 1).data;
                return {ok: true, w: img.naturalWidth, h: img.naturalHeight, alpha: corner[3],
                        src: img.src.slice(0, 80)};
            })"""
        )
        for s in stats:
            assert s["ok"], f"figure did not load: {s['src']}"
            assert s["w"] > 10 and s["h"] > 10, s
            assert s["alpha"] == 255, f"figure background is transparent (unreadable in dark mode): {s['src']}"
        # every static figure has a caption, not a title (the frame players are figures of their own)
        uncaptioned = page.evaluate(
            """() => Array.from(document.querySelectorAll('.cell_output img'))
                 .filter(img => !img.closest('.animation'))
                 .filter(img => { const f = img.closest('figure'); return !f || !f.querySelector('figcaption'); })
                 .map(img => img.src.slice(-24))"""
        )
        assert not uncaptioned, f"figures without a caption: {uncaptioned}"
        page.screenshot(path=str(artifacts / f"{nb.name}-light.png"), full_page=False)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_dark_mode_screenshot(browser, base_url, artifacts, nb):
    with opened(browser, base_url, nb.as_posix(), color_scheme="dark") as (page, _):
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; document.documentElement.dataset.mode = 'dark'; }")
        bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        # the theme really switched: a dark body background
        rgb = [int(v) for v in bg[bg.index("(") + 1: bg.index(")")].split(",")[:3]]
        assert sum(rgb) < 3 * 100, f"dark mode not applied: body background {bg}"
        page.screenshot(path=str(artifacts / f"{nb.name}-dark.png"), full_page=False)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_frame_players_respond_to_input(browser, base_url, nb):
    with opened(browser, base_url, nb.as_posix()) as (page, _):
        players = page.locator(".animation")
        if nb.name.split("-")[0].isdigit() or nb.name == "getting-started":
            assert players.count() >= 1, "every chapter has a kernel-free interactive figure"
        for i in range(players.count()):
            player = players.nth(i)
            img = player.locator("img").first
            before = img.get_attribute("src")
            player.locator("button[title='Next frame']").click()
            page.wait_for_timeout(100)
            after_next = img.get_attribute("src")
            player.locator("button[title='Last frame']").click()
            page.wait_for_timeout(100)
            after_last = img.get_attribute("src")
            assert before and after_last and (after_next != before or after_last != before), "the player did not change frame"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_launch_buttons_point_at_this_notebook(browser, base_url, nb):
    with opened(browser, base_url, nb.as_posix()) as (page, _):
        hrefs = page.eval_on_selector_all(".dropdown-launch-buttons a", "els => els.map(e => e.href)")
        colab = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{nb.as_posix()}.ipynb"
        binder = f"https://mybinder.org/v2/gh/{REPO}/{BRANCH}?urlpath=tree/{nb.as_posix()}.ipynb"
        assert colab in hrefs, hrefs
        assert binder in hrefs, hrefs


def _ledger_chapters():
    """Notebooks whose source states claims on the ledger (``claims.Ledger(``)."""
    import json

    out = []
    for nb in NOTEBOOKS:
        cells = json.loads((ROOT / f"{nb}.ipynb").read_text(encoding="utf-8"))["cells"]
        if any("claims.Ledger(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code"):
            out.append(nb)
    return out


def test_claims_board_lists_every_ledger(browser, base_url):
    """The board has one row per claim of every chapter on the ledger, and the count per verdict."""
    with opened(browser, base_url, "book/reproducibility") as (page, problems):
        assert not problems, problems
        board = page.locator(".claims-board")
        assert board.count() == 1, "the claims board is missing"
        counts = board.locator(".claims-board-counts li").all_inner_texts()
        assert counts and all(":" in c for c in counts), counts
        total = sum(int(c.rsplit(":", 1)[1]) for c in counts)
        rows = board.locator(".claims-board-table tbody tr")
        assert rows.count() == total >= 2, (rows.count(), counts)
        chapters = set(board.locator(".claims-board-table tbody tr td:first-child").all_inner_texts())
    for nb in _ledger_chapters():
        with opened(browser, base_url, nb.as_posix()) as (ledger_page, _):
            title = ledger_page.locator("main h1").first.inner_text().strip().rstrip("#").strip()
            n_rows = ledger_page.locator("table.claims-ledger tr").count() - 1
        assert title in chapters, f"{nb} states claims but is not on the board ({chapters})"
        assert n_rows >= 1, f"{nb}: its page shows no paper-vs-ours table"
