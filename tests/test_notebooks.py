"""Every chapter in _toc.yml runs top to bottom with FAST=True and all its checks pass.

The student versions of chapters 1-2 run through nbmake (`pytest --nbmake`, configured in
pyproject.toml), FAST by the mock the generator puts on their parameters cell; those of chapters
3-8 run under MODEL="auto" against the loopback hub (tests/test_chapters_online.py).
"""

from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _toc_files(entry):
    if isinstance(entry, dict):
        found = [entry["file"]] if "file" in entry else []
        for value in entry.values():
            if isinstance(value, list):
                found += [f for item in value for f in _toc_files(item)]
        return found
    return []


def toc_notebooks():
    """The numbered chapter notebooks (NN_slug) listed in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    paths = [ROOT / f"{f}.ipynb" for f in _toc_files(toc)]
    return [p for p in paths if p.is_file() and p.name[:2].isdigit()]


def test_toc_lists_the_first_two_chapters():
    assert [p.name for p in toc_notebooks()][:2] == ["01_math.ipynb", "02_loss.ipynb"]


def printed(executed: Path) -> str:
    """Everything an executed notebook printed."""
    return "".join(
        o.get("text", "")
        for c in nbformat.read(executed, as_version=4).cells
        if c.cell_type == "code"
        for o in c.outputs
    )


@pytest.mark.parametrize("notebook", toc_notebooks(), ids=lambda p: p.stem)
def test_chapter_runs_fast_and_its_checks_pass(notebook, executed_fast):
    shown = printed(executed_fast(notebook))
    assert "✗" not in shown
    assert shown.count("✓") >= 3


def test_appendix_runs_and_shows_every_table(executed_fast):
    executed = executed_fast(ROOT / "book" / "appendix_data.ipynb")
    shown = "".join(
        o.get("data", {}).get("text/markdown", "")
        for c in nbformat.read(executed, as_version=4).cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    for expected in ("| fortunes |", "| Arabic |", "| mini/run1 |", "| d_model / d_mlp |"):
        assert expected in shown
