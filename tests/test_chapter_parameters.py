"""Chapter parameter cells restate the package's presets: they must not drift apart."""

import ast
import json
from pathlib import Path

from tutorial_sae.training.presets import BASE, preset_for

BOOK = Path(__file__).resolve().parents[1] / "book"


def parameters(notebook: Path) -> dict:
    """The scalars assigned in the notebook's cell tagged `parameters`."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
    }


def test_chapter_3_trains_with_the_base_preset():
    p = parameters(BOOK / "03_training.ipynb")
    assert p["SEED"] == BASE.seed == BASE.sae.seed
    assert p["N_STEPS"] == BASE.n_steps
    assert p["BATCH_SIZE"] == BASE.batch_size
    assert p["DEAD_WINDOW"] == BASE.dead_window
    # l1_coeff and the expansion come from the loaded model's preset unless the reader sets them.
    assert p["L1_COEFF"] == p["EXPANSION"] == "preset"
    mini = preset_for("mini")
    assert mini.l1_coeff == BASE.sae.l1_coeff
    assert mini.expansion * BASE.sae.d_in == BASE.sae.d_sae


def test_every_chapter_parameter_cell_holds_only_scalars():
    for notebook in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        for name, value in parameters(notebook).items():
            assert isinstance(value, (int, float, str, bool)), (notebook.name, name, value)
