"""The API appendix (``book/api.md``), generated from ddlib's docstrings when the book is built.

The page holds a marker line, ``<!-- ddlib-api -->``, which this extension replaces (Sphinx's ``source-read``)
with one section per public module of ddlib: a module that declares ``__all__``, except a submodule of a
package that declares one itself (the package re-exports it, and is documented once, there). Each section is
the module's docstring, an autosummary table of its ``__all__`` (one line per name, linking below), and the
autodoc entry of each name (``automodule`` with ``:members:``, which follows ``__all__``). A new public
module, or a new name in an ``__all__``, joins the appendix at the next build; nothing is listed by hand.
"""
from __future__ import annotations

import ast
import pkgutil
import re
from pathlib import Path

MARKER = "<!-- ddlib-api -->"
PAGE = "api"


def _declares_all(path: Path) -> bool:
    """Whether the module's source assigns ``__all__`` at its top level (read, not imported)."""
    tree = ast.parse(path.read_text())
    return any(isinstance(n, (ast.Assign, ast.AnnAssign)) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
        for n in tree.body)


def public_modules() -> list[str]:
    """ddlib's modules that declare ``__all__``, in name order, without those a documented package re-exports."""
    import ddlib

    root = Path(ddlib.__file__).parent
    found = {"ddlib": root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix="ddlib."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        rel = Path(*info.name.split(".")[1:])
        path = root / rel / "__init__.py" if info.ispkg else (root / rel).with_suffix(".py")
        found[info.name] = path
    declared = [m for m, p in found.items() if p.is_file() and _declares_all(p)]
    packages = {m for m in declared if found[m].name == "__init__.py" and m != "ddlib"}
    return sorted(m for m in declared if not any(m.startswith(pkg + ".") for pkg in packages))


def section(module: str) -> str:
    """The MyST text of one module's section: autodoc's ``automodule`` (docstring, then every name of
    ``__all__``), with an autosummary table of those names between the two (autodoc puts a directive's
    content after the docstring)."""
    import importlib

    names = list(getattr(importlib.import_module(module), "__all__", []))
    table = "\n".join(f"      {n}" for n in names)  # names of the current module (automodule sets it)
    return (f"## `{module}`\n\n```{{eval-rst}}\n.. automodule:: {module}\n   :members:\n\n"
            f"   .. rubric:: Public names\n\n   .. autosummary::\n      :nosignatures:\n\n{table}\n```\n")


_LITERAL = re.compile(r"(``.+?``)")
_OPENING = re.compile(r"(?<![\\\w*])(\*{1,2})(?=[\w(])")


def _escape_stray_stars(text: str) -> str:
    """``*shape`` and ``**kw`` written in a docstring's prose (not in a literal) as plain characters: reST would
    read them as the start of emphasis that never ends (a warning, which fails the book's ``-W`` build).
    A ``*word*`` or ``**word**`` pair on the line is left as emphasis."""
    def fix(part: str) -> str:
        out, pos = [], 0
        for m in _OPENING.finditer(part):
            n = len(m.group(1))
            if re.search(r"(?<=[^\s*])\*{%d}(?![\w*])" % n, part[m.end():]):
                continue  # it closes later on the line: emphasis
            out += [part[pos:m.start()], "\\*" * n]
            pos = m.end()
        return "".join(out) + part[pos:]

    return "".join(p if i % 2 else fix(p) for i, p in enumerate(_LITERAL.split(text)))


def _docstring(app, what, name, obj, options, lines: list[str]) -> None:  # noqa: ANN001 - Sphinx's signature
    lines[:] = [_escape_stray_stars(line) for line in lines]


def _fill(app, docname: str, source: list[str]) -> None:  # noqa: ANN001 - Sphinx's signature
    if docname == PAGE and MARKER in source[0]:
        source[0] = source[0].replace(MARKER, "\n".join(section(m) for m in public_modules()))


def setup(app):  # noqa: ANN001, ANN201
    app.connect("source-read", _fill)
    app.connect("autodoc-process-docstring", _docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
