"""The appendix tables read the shipped assets and fail clearly when they are missing."""

import json

import pytest

from tutorial_sae.plots import appendix as model_card


def test_tables_of_the_shipped_model_cover_every_language():
    table = model_card.quality_markdown()
    for name in ("English", "Python code", "Chinese", "Arabic"):
        assert f"| {name} |" in table
    assert "| d_model / d_mlp |" in model_card.model_markdown()
    assert model_card.samples_markdown().count("\n") == 5


def test_sae_table_reads_each_metrics_file(tmp_path):
    folder = tmp_path / "saes" / "x2"
    folder.mkdir(parents=True)
    scores = dict(
        l0=12.5,
        explained_variance=0.8,
        ce_loss_recovered=0.9,
        ce_loss_recovered_mean_ablation=0.7,
        dead_fraction=0.01,
        dense_fraction=0.0,
    )
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "name": "mini/x2",
                "eval": scores,
                "train_seconds": 90,
                "train_config": {"sae": {"d_sae": 1024}},
            }
        )
    )
    table = model_card.saes_markdown(tmp_path)
    assert "| mini/x2 | 1,024 | 12.5 | 80.0% | 90.0% | 70.0% | 1.0% | 0.0% | 1.5 min |" in table


def test_missing_or_broken_files_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="build.saes build"):
        model_card.quality_markdown(tmp_path)
    with pytest.raises(FileNotFoundError, match="no SAE metrics"):
        model_card.saes_markdown(tmp_path)
    (tmp_path / "quality.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        model_card.quality_markdown(tmp_path)
