"""Drop repeated <script> entries from every page.

With Sphinx 7.4, Jupyter Book 1 lists the scripts of sphinx-thebe and sphinx-togglebutton
twice; thebe's second ``const THEBE_JS_URL`` is a SyntaxError in the reader's console.
"""
from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:  # noqa: ANN001 - Sphinx's signature
    seen: set[tuple] = set()
    kept = []
    for js in context.get("script_files", []):
        # the same script comes back with another priority or filename None vs ""; compare file and attributes
        key = (getattr(js, "filename", str(js)) or "",  # inline scripts: None or ""
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"][:] = kept  # in place: handlers after this one (MathJax) add to this list


def setup(app):  # noqa: ANN001, ANN201
    app.connect("html-page-context", _dedupe, priority=100)  # early: a later handler may end the event by returning a template
    return {"parallel_read_safe": True, "parallel_write_safe": True}
