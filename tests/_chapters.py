"""What every chapter page must hold, checked on an executed notebook (chapters 0-2's tests use it):
a box titled "What we found" whose glued values are all set, every value the prose cites set, and no NaN
in what a reader sees (tables, printed text, glued values)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat

from ddlib.sweep import read_results

GLUE = re.compile(r"\{glue:text\}`([^`:]+)(?::[^`]*)?`")
NAN = re.compile(r"(?<![\w.])(nan|NaN)(?![\w])")


def finding_box(nb: nbformat.NotebookNode) -> str:
    """The text of the chapter's ``What we found`` admonition ("" when it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"```\{admonition\} What we found\n(.*?)\n```", cell.source, re.S)
            if m:
                return m.group(1)
    return ""


def check_page(path: Path) -> dict[str, object]:
    """The checks above; returns the glued values."""
    nb = nbformat.read(path, as_version=4)
    glued = read_results(path)
    box = finding_box(nb)
    assert box, "the chapter has no admonition titled 'What we found'"
    in_box = GLUE.findall(box)
    assert in_box, "the 'What we found' box cites no glued value"
    cited = {k for c in nb.cells if c.cell_type == "markdown" for k in GLUE.findall(c.source)}
    missing = sorted(cited - set(glued))
    assert not missing, f"the prose cites values that were never glued: {missing}"
    for k in cited:
        v = glued[k]
        assert not (isinstance(v, float) and math.isnan(v)), f"{k} is NaN"
        assert not NAN.search(str(v)), f"{k} reads {v!r}"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            assert o.output_type != "error", f"cell {i} failed: {o.get('ename')}"
            shown = [o.get("text", "")] + [o.get("data", {}).get("text/plain", "")]
            html = o.get("data", {}).get("text/html", "")
            if "<table" in html and "plotly" not in html:
                shown.append(html)
            for text in shown:
                assert not NAN.search(text or ""), f"cell {i} shows NaN: {NAN.search(text).group(0)!r}"
    return glued


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A two-cell notebook at ``path``, for the papermill and sweep tests: a cell tagged ``parameters``, then
    ``body``."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path
