"""Small fixes to the HTML the book's theme stack emits (found by the browser tests).

* sphinx-thebe registers its inline configuration script twice on every page, and the
  second ``const THEBE_JS_URL`` declaration throws a JavaScript error; keep one copy of
  each identical script.
"""

from __future__ import annotations


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
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
