"""Every teaching notebook runs top to bottom (headless, MINICNN_FAST=1: fewer images and epochs); the exercise
notebook twice, as a student gets it (skeletons) and with the teacher's solutions (MINICNN_SOLUTIONS=1)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
RUNS = ([pytest.param(p, False, id=p.stem) for p in NOTEBOOKS]
        + [pytest.param(p, True, id=p.stem + "-solutions") for p in NOTEBOOKS if p.stem == "11_exercises"])


def test_the_eleven_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 12)]


@pytest.mark.parametrize("path, solutions", RUNS)
def test_notebook_runs(path, solutions, monkeypatch):
    monkeypatch.setenv("MINICNN_FAST", "1")
    if solutions:
        monkeypatch.setenv("MINICNN_SOLUTIONS", "1")
    else:
        monkeypatch.delenv("MINICNN_SOLUTIONS", raising=False)
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 1, "every notebook shows at least one picture"
    if path.stem == "11_exercises":  # every check passes with the solutions, none runs without them
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "FAIL" not in printed
        assert ("PASS" in printed) == solutions and ("not implemented yet" in printed) != solutions


def test_the_coverage_map_links_to_sections_that_exist():
    """Every `[NN § Title](NN_name.ipynb)` link of examples/README.md names a heading of that notebook (its math
    written without the dollar signs)."""
    import re
    readme = (EXAMPLES / "README.md").read_text()
    links = re.findall(r"\[(\d\d) § ([^\]]+)\]\((\d\d_\w+\.ipynb)\)", readme)
    assert len(links) > 100
    headings = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        headings[path.name] = {line.lstrip("#").strip().replace("$", "") for c in nb.cells if c.cell_type == "markdown"
                               for line in c.source.splitlines() if line.startswith("#")}
    missing = [(number, title, name) for number, title, name in links
               if name[:2] != number or title not in headings.get(name, ())]
    assert not missing
