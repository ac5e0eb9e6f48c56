"""Per-model presets (training.presets) and provenance labels (plots.provenance), chapters 3-7."""

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tutorial_sae.analysis.sweeps import load_dead_feature_comparison, load_l1_sweep  # noqa: E402
from tutorial_sae.models import loading  # noqa: E402
from tutorial_sae.models.loading import sae_from_nanda  # noqa: E402
from tutorial_sae.plots.provenance import (  # noqa: E402
    label_figure,
    label_text,
    provenance,
    source_model,
)
from tutorial_sae.training.presets import (  # noqa: E402
    BASE,
    PRESETS,
    RUN1,
    model_name_of,
    preset_for,
)

BOOK = Path(__file__).resolve().parents[1] / "book"


def fake_model(name: str, d_mlp: int):
    return SimpleNamespace(cfg=SimpleNamespace(model_name=name, d_mlp=d_mlp))


def test_mini_preset_is_chapter_3s_base_run():
    p = preset_for("mini")
    assert (p.model, p.d_mlp, p.pretrained_sae) == ("mini", 512, "mini/run1")
    assert p.expansion * BASE.sae.d_in == BASE.sae.d_sae
    assert p.l1_coeff == BASE.sae.l1_coeff == RUN1.sae.l1_coeff == 1.3


def test_gelu_1l_preset_is_nandas_run1_in_our_units():
    p = preset_for("gelu-1l")
    assert (p.model, p.d_mlp, p.pretrained_sae, p.expansion) == ("gelu-1l", 2048, "gelu-1l/run1", 4)
    # The loader's conversion of his 25_cfg.json (l1_coeff per batch element, batch 4096).
    state = {
        "W_enc": torch.zeros(4, 8),
        "W_dec": torch.zeros(8, 4),
        "b_enc": torch.zeros(8),
        "b_dec": torch.zeros(4),
    }
    converted = sae_from_nanda(state, {"l1_coeff": 3e-4, "batch_size": 4096, "dict_mult": 2})
    assert p.l1_coeff == pytest.approx(converted.cfg.l1_coeff, rel=1e-12)
    assert p.l1_coeff == pytest.approx(1.2288, rel=1e-12)


def test_a_loaded_model_is_named_by_its_config():
    assert preset_for(fake_model("mini", 512)) is PRESETS["mini"]
    # TransformerLens names gelu-1l after its official repo, NeelNanda/GELU_1L512W_C4_Code.
    assert preset_for(fake_model("GELU_1L512W_C4_Code", 2048)) is PRESETS["gelu-1l"]
    assert model_name_of("gelu-1l/run2") == "gelu-1l"
    assert model_name_of("mini/x4") == "mini"


def test_the_shipped_mini_model_gets_the_mini_preset():
    model = loading.load_model("mini", device="cpu")
    assert model.cfg.model_name == "mini"
    assert preset_for(model).d_mlp == model.cfg.d_mlp


def test_auto_follows_what_load_model_chose(monkeypatch):
    monkeypatch.setattr(loading, "_auto_choice", loading.AutoChoice("gelu-1l", "test"))
    assert preset_for("auto").model == "gelu-1l"
    monkeypatch.setattr(loading, "_auto_choice", loading.AutoChoice("mini", "test"))
    assert preset_for("auto").model == "mini"


def test_bad_models_raise_clear_errors():
    with pytest.raises(ValueError, match="d_mlp 512"):
        preset_for(fake_model("mini", 2048))  # hook width disagrees with the preset
    with pytest.raises(ValueError, match="expected a model named"):
        preset_for("gpt2")
    with pytest.raises(TypeError, match="cfg.model_name"):
        preset_for(42)


def test_parameter_values_fall_back_to_the_preset_only_on_the_keyword():
    p = preset_for("gelu-1l")
    assert p.value("l1_coeff", "preset") == p.l1_coeff
    assert p.value("expansion", "preset") == 4
    assert p.value("l1_coeff", 0.5) == 0.5
    assert p.value("expansion", 8) == 8
    for name, bad in (("expansion", 2.5), ("expansion", 0), ("l1_coeff", -1.0), ("l1_coeff", "x")):
        with pytest.raises(ValueError, match=name):
            p.value(name, bad)
    with pytest.raises(ValueError, match="lr"):
        p.value("lr", 1e-3)


def test_chapter_3_parameters_take_the_preset():
    cells = json.loads((BOOK / "03_training.ipynb").read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(cell["source"])
    assert 'EXPANSION = "preset"' in source and 'L1_COEFF = "preset"' in source


def test_provenance_names_the_source_only_when_models_differ():
    sweep = load_l1_sweep()
    assert source_model(sweep) == "mini"
    assert provenance("mini", sweep) == ""
    note = provenance("gelu-1l", sweep)
    assert note == "precomputed on mini, not on gelu-1l (the model loaded here)"
    assert provenance("gelu-1l", "gelu-1l") == ""  # a result made in this run
    assert source_model({"model": "gelu-1l"}) == "gelu-1l"
    assert label_text("table", "mini", sweep) == "table"
    assert label_text("table", "gelu-1l", sweep) == f"[{note}]\ntable"
    with pytest.raises(ValueError, match="resolved model name"):
        provenance("auto", sweep)
    with pytest.raises(TypeError, match="str"):
        label_text(None, "mini")


def test_figures_of_precomputed_results_carry_the_label():
    from tutorial_sae.plots.training import plot_dead_feature_comparison

    comparison = load_dead_feature_comparison()
    fig = label_figure(plot_dead_feature_comparison(comparison), "gelu-1l", comparison)
    assert fig.get_suptitle().endswith(
        "(precomputed on mini, not on gelu-1l (the model loaded here))"
    )
    plain = plot_dead_feature_comparison(comparison)
    title = plain.get_suptitle()
    assert label_figure(plain, "mini", comparison).get_suptitle() == title
    plt.close("all")
    with pytest.raises(TypeError, match="Figure"):
        label_figure("not a figure", "mini")


# Cells that show a precomputed result, by chapter: each must pass it through a label helper.
SHOWN = {
    "03_training": (
        "comparison_table(",
        "plot_dead_feature_comparison(",
        "sweep_table(",
        "plot_l1_sweep(",
        "l1_widget(",
    ),  # fmt: skip
    "05_specificity": ("plot_sizes(",),
}


@pytest.mark.parametrize("chapter", sorted(SHOWN))
def test_chapters_label_every_precomputed_table_and_figure(chapter):
    cells = json.loads((BOOK / f"{chapter}.ipynb").read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for call in SHOWN[chapter]:
        (cell,) = [src for src in code if call in src]
        assert "ts.label_" in cell or "ts.provenance(" in cell, (chapter, call)
