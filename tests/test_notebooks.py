"""The notebooks run top to bottom, and are committed without outputs."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} >= {
        "01-quickstart.ipynb",
        "02-sensitivity.ipynb",
        "03-calibrate-and-nowcast.ipynb",
        "04-keep-score.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    assert unshown_numbers(notebook) == [], path.name


NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e-?\d+)?%?")


def unshown_numbers(notebook) -> list[tuple[int, str]]:
    """The numbers the prose of an executed notebook quotes that neither its code nor its
    outputs show, as (cell, number): prose that states a figure must take it from what was
    computed (a Markdown cell rendered from variables) or leave it out. A percent matches its
    number (95% is shown by a column p95), a grouped number its digits (8,960 by 8960 or
    8_960)."""
    shown = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown.append(cell.source)
        for output in cell.outputs:
            shown.append(output.get("text", ""))
            for kind in ("text/plain", "text/html", "text/markdown"):
                shown.append(str(output.get("data", {}).get(kind, "")))
    shown_text = re.sub(r"(?<=\d)_(?=\d)", "", "\n".join(shown))  # 200_000 shows 200000
    missing = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        for number in NUMBER.findall(cell.source):
            bare = number.rstrip("%")
            if bare not in shown_text and bare.replace(",", "") not in shown_text:
                missing.append((i, number))
    return missing


def test_prose_that_quotes_a_figure_no_output_shows_is_caught():
    """The check on a made-up notebook: a figure in the prose that the outputs show passes, one
    they do not (the prose of an earlier run) is caught, with its cell."""
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("result = 0.2634")
    code.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "0.2634 (8960)"})]
    notebook.cells = [
        code,
        nbformat.v4.new_markdown_cell("P(war) is about 0.26 after 8,960 solves (95%)."),
        nbformat.v4.new_markdown_cell("Between roughly 0.08 and 0.36."),
    ]
    assert unshown_numbers(notebook) == [(1, "95%"), (2, "0.08"), (2, "0.36")]
