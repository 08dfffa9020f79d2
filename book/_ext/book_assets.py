"""Local Sphinx extension of the book.

* ``{claims-board}`` directive: the book's claims board. Every chapter states its claims
  through ``jaxpapers.claims.Ledger``, whose table output embeds the records as JSON
  (``<script type="application/json" class="jaxpapers-claims">``); this extension collects
  them from every page as it is read and renders one row per claim of every chapter, with
  the count per verdict at the top.

* ``{book-status}`` directive: the reproducibility table. For every executed notebook it
  shows the fast-mode execution time of this build (myst-nb's execution data when the build
  executed the notebooks, else the cell timings that nbclient stored in the notebook when
  CI executed it), the jaxpapers and jax versions the build used, and the full-mode GPU run
  recorded in the notebook's metadata (``executable_papers.full_mode``), if any.
* An explorer cell (``jaxpapers.notebook.explorer``) outputs the ipywidgets controls and then
  the static default figure; a caption in the cell's ``mystnb.figure`` metadata would wrap
  both outputs in a figure, so the controls (an invisible widget script on the static site)
  would get a second, empty captioned figure. Figures that hold no image but a widget are
  unwrapped before figures are numbered.
* sphinx-thebe registers its inline configuration script twice on every page, and the
  second ``const THEBE_JS_URL`` declaration throws a JavaScript error; keep one copy of
  each identical script (found by the browser tests).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from docutils import nodes
from docutils.transforms import Transform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective


class book_status_node(nodes.General, nodes.Element):
    """Placeholder replaced by the status table once every page has been read."""


class BookStatus(SphinxDirective):
    def run(self):
        return [book_status_node()]


def _notebook_timing(path: Path):
    """(seconds, finished) from nbclient's per-cell timestamps stored in an executed notebook."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    starts, ends = [], []
    for cell in nb.get("cells", []):
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            starts.append(datetime.fromisoformat(ex["iopub.execute_input"].replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(ex["shell.execute_reply"].replace("Z", "+00:00")))
    if not starts:
        return None, None
    return (max(ends) - min(starts)).total_seconds(), max(ends)


def _full_mode(path: Path) -> str:
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return "not measured"
    full = meta.get("executable_papers", {}).get("full_mode")
    if not full:
        return "not measured"
    if full.get("kind") == "projected from a probe":
        if "projected_s" not in full:
            return f"probe failed on {full.get('device', '?')} ({full.get('date', '?')})"
        minutes = full["projected_s"] / 60
        memory = f", peak {full['peak_device_memory_mib']} MiB" if full.get("peak_device_memory_mib") else ""
        return (f"about {minutes:.0f} min projected from a probe on {full.get('device', '?')} "
                f"({full.get('date', '?')}, jax {full.get('jax', '?')}{memory})")
    return f"{full.get('wall_s', '?')} s on {full.get('device', '?')} ({full.get('date', '?')})"


def _versions() -> str:
    try:
        import jax
        import jaxpapers

        return f"jaxpapers {jaxpapers.__version__}, jax {jax.__version__}"
    except Exception:  # the build environment may lack them; say so rather than fail
        return "unknown"


def _table(header, rows):
    table = nodes.table(classes=["colwidths-auto"])
    tgroup = nodes.tgroup(cols=len(header))
    table += tgroup
    for _ in header:
        tgroup += nodes.colspec(colwidth=1)
    thead, tbody = nodes.thead(), nodes.tbody()
    tgroup += thead
    tgroup += tbody
    for target, cells in [(thead, header)] + [(tbody, r) for r in rows]:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", nodes.paragraph(text=str(cell)))
        target += row
    return table


class BookStatusTransform(SphinxPostTransform):
    default_priority = 8

    def run(self, **kwargs):
        placeholders = list(self.document.findall(book_status_node))
        if not placeholders:
            return
        env = self.env
        try:
            from myst_nb.sphinx_ import NbMetadataCollector

            doc_data = NbMetadataCollector.get_doc_data(env)
        except Exception:
            doc_data = {}
        versions = _versions()
        rows = []
        for docname in sorted(env.found_docs):
            path = Path(env.doc2path(docname))
            if path.suffix != ".ipynb":
                continue
            title = env.titles[docname].astext() if docname in env.titles else docname
            exec_data = (doc_data.get(docname) or {}).get("exec_data")
            if exec_data and exec_data.get("runtime") is not None:
                seconds = exec_data["runtime"]
                when = datetime.fromtimestamp(exec_data["mtime"]).strftime("%Y-%m-%d %H:%M")
                status = "✅" if exec_data.get("succeeded") else "❌"
            else:
                seconds, finished = _notebook_timing(path)
                when = finished.strftime("%Y-%m-%d %H:%M") if finished else "-"
                status = "✅" if seconds is not None else "not executed in this build"
            rows.append([title, status, "-" if seconds is None else f"{seconds:.0f}", when, versions,
                         _full_mode(path)])
        header = ["Chapter", "Status", "Fast mode (s)", "Executed (UTC)", "Versions", "Full mode (GPU)"]
        for node in placeholders:
            node.replace_self(_table(header, rows))


MARKER = 'class="jaxpapers-claims">'
BOARD_VERDICTS = ("reproduced", "reproduced at a smaller scale", "partly reproduced",
                  "not reproduced at this scale", "contradicted", "check passed", "sanity check",
                  "smoke run", "dry run")


class claims_board_node(nodes.General, nodes.Element):
    """Placeholder replaced by the claims board once every page has been read."""


class ClaimsBoard(SphinxDirective):
    def run(self):
        return [claims_board_node()]


def _records_from_html(text: str) -> list[dict]:
    out = []
    while MARKER in text:
        text = text.split(MARKER, 1)[1]
        payload, text = text.split("</script>", 1)
        out.append(json.loads(payload.replace("<\\/", "</")))
    return out


def _collect_claims(app, doctree):
    """doctree-read: keep the ledger records that a page's outputs embed."""
    env = app.env
    if not hasattr(env, "jaxpapers_claims"):
        env.jaxpapers_claims = {}
    found = []
    for node in doctree.findall(nodes.raw):
        if "html" in node.get("format", "") and MARKER in node.astext():
            found.extend(_records_from_html(node.astext()))
    if found:
        env.jaxpapers_claims[env.docname] = found
    else:
        env.jaxpapers_claims.pop(env.docname, None)


def _purge_claims(app, env, docname):
    getattr(env, "jaxpapers_claims", {}).pop(docname, None)


def _merge_claims(app, env, docnames, other):
    if not hasattr(env, "jaxpapers_claims"):
        env.jaxpapers_claims = {}
    env.jaxpapers_claims.update(getattr(other, "jaxpapers_claims", {}))


def board_rows(by_doc: dict, titles: dict) -> tuple[list[list[str]], dict[str, int]]:
    """Rows (chapter, claim, paper, ours, verdict, rule, seeds) and the count per verdict."""
    rows, counts = [], {}
    for docname in sorted(by_doc):
        title = titles.get(docname, docname)
        for ledger in by_doc[docname]:
            for c in ledger["claims"]:
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
                if c["kind"] == "claim":
                    paper = f"{c['paper']} ({c['source']})" if c["paper"] else c["source"]
                else:
                    paper = "-"
                rule = c["rule"] + (" -- holds" if c["passed"] else " -- does not hold")
                if c.get("pin"):
                    rule += f"; pinned: {c['pin']['rule']}"
                if c.get("control_summary"):
                    rule += f"; negative control: {c['control_summary']}"
                rows.append([title, f"{c['id']}: {c['statement']}", paper, c["ours"], c["verdict"],
                             rule, c.get("seeds") or "-"])
    return rows, counts


class ClaimsBoardTransform(SphinxPostTransform):
    default_priority = 8

    def run(self, **kwargs):
        placeholders = list(self.document.findall(claims_board_node))
        if not placeholders:
            return
        by_doc = getattr(self.env, "jaxpapers_claims", {})
        titles = {d: t.astext() for d, t in self.env.titles.items()}
        rows, counts = board_rows(by_doc, titles)
        order = [v for v in BOARD_VERDICTS if v in counts] + sorted(set(counts) - set(BOARD_VERDICTS))
        summary = nodes.bullet_list(classes=["claims-board-counts"])
        for v in order:
            summary += nodes.list_item("", nodes.paragraph(text=f"{v}: {counts[v]}"))
        total = nodes.paragraph(text=f"{len(rows)} records from {len(by_doc)} page{'' if len(by_doc) == 1 else 's'} "
                                     f"({sum(n for v, n in counts.items() if v in BOARD_VERDICTS[:5])} "
                                     f"claims of the papers, the rest checks).")
        header = ["Chapter", "Claim", "Paper (source)", "Ours", "Verdict", "Rule", "Seeds / episodes"]
        for node in placeholders:
            container = nodes.container(classes=["claims-board"])
            container += total
            container += summary
            table = _table(header, rows)
            table["classes"].append("claims-board-table")
            container += table
            node.replace_self(container)


class UnwrapWidgetFigures(Transform):
    """Unwrap a figure that holds an ipywidgets view and no image (see the module docstring)."""

    default_priority = 700

    def apply(self, **kwargs):
        for fig in list(self.document.findall(nodes.figure)):
            if any(True for _ in fig.findall(nodes.image)):
                continue
            raws = [n for n in fig.findall(nodes.raw) if "widget-view+json" in n.astext() or
                    "application/vnd.jupyter.widget-view" in str(n.get("format", ""))]
            if not raws:
                continue
            keep = [c for c in fig.children if not isinstance(c, (nodes.caption, nodes.legend))]
            fig.replace_self(keep)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        # the same inline script is registered once with filename None and once with ""
        key = (getattr(js, "filename", str(js)) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.add_node(book_status_node)
    app.add_directive("book-status", BookStatus)
    app.add_post_transform(BookStatusTransform)
    app.add_transform(UnwrapWidgetFigures)
    app.add_node(claims_board_node)
    app.add_directive("claims-board", ClaimsBoard)
    app.add_post_transform(ClaimsBoardTransform)
    app.connect("doctree-read", _collect_claims)
    app.connect("env-purge-doc", _purge_claims)
    app.connect("env-merge-info", _merge_claims)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
