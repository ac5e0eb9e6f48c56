"""The l1_coeff sweep and dead-feature comparison: histograms, runs, JSON round trip, validation."""

import json
import math
from dataclasses import replace

import pytest
import torch

from tutorial_sae.analysis.sweeps import (
    DEAD_FILE,
    SWEEP_FILE,
    L1Sweep,
    SweepPoint,
    default_path,
    load_dead_feature_comparison,
    load_l1_sweep,
    run_dead_feature_comparison,
    run_l1_sweep,
    save_json,
)
from tutorial_sae.core.metrics import DensityHistogram
from tutorial_sae.core.sae import SAEConfig
from tutorial_sae.models.mini import MiniModelConfig, build_model
from tutorial_sae.training.trainer import TrainConfig


def fake_sweep(n: int = 5) -> L1Sweep:
    hist = DensityHistogram([-5.0, -2.5, 0.0], [3, 4], dead=1, n_tokens=100_000)
    points = [
        SweepPoint(
            2.0**i, 100 / 2**i, 0.1 * i, 0.9 - 0.05 * i, 0.95 - 0.05 * i, 0.01 * i, 0.0, hist
        )
        for i in range(n)
    ]
    return L1Sweep(points, chosen=1.0, settings={"note": "fake"})


@pytest.fixture(scope="module")
def tiny():
    cfg = MiniModelConfig(d_vocab=64, d_model=16, n_heads=2, n_ctx=16)
    model = build_model(cfg, tokenizer=None)
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 64, (64, 16), generator=gen)
    held_out = torch.randint(0, 64, (8, 16), generator=gen)
    base = TrainConfig(
        sae=SAEConfig(d_in=64, d_sae=128, l1_coeff=1.0, seed=3),
        n_steps=12,
        batch_size=64,
        lr=1e-2,
        dead_window=4,
        resample_every=6,
        buffer_batches=4,
        model_batch_size=8,
        log_every=2,
        device="cpu",
        seed=3,
    )
    return model, train, held_out, base


def test_sweep_json_round_trips(tmp_path):
    sweep = fake_sweep()
    loaded = load_l1_sweep(save_json(sweep, tmp_path / "s.json"))
    assert loaded == sweep
    assert loaded.point(4.0).l0 == 25.0
    assert loaded.column("l1_coeff") == [1.0, 2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("points"), "keys"),
        (lambda d: d.update(points=d["points"][:4]), ">= 5 sweep points"),
        (lambda d: d["points"][2].update(l0=float("nan")), r"points\[2\].l0"),
        (lambda d: d["points"][1].update(explained_variance="high"), "finite number"),
        (lambda d: d["points"].reverse(), "strictly increasing"),
        (lambda d: d.update(chosen=3.0), "chosen"),
        (lambda d: d["points"][0]["histogram"]["edges"].pop(), r"histogram.edges"),
        (lambda d: d.update(kind="dead_features"), "kind 'l1_sweep'"),
    ],
)
def test_sweep_loader_names_what_is_wrong(tmp_path, edit, message):
    path = save_json(fake_sweep(), tmp_path / "s.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as err:
        load_l1_sweep(path)
    assert str(path) in str(err.value)


def test_sweep_loader_rejects_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="expected JSON"):
        load_l1_sweep(path)


def test_sweep_loader_says_how_to_build_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m tutorial_sae.build.sweeps build"):
        load_l1_sweep(tmp_path / "absent.json")


def test_a_larger_l1_coeff_gives_a_sparser_sae(tiny, tmp_path):
    model, train, held_out, base = tiny
    sweep = run_l1_sweep(
        model, train, held_out, values=(0.01, 30.0), base=base, chosen=0.01, progress=False
    )
    low, high = sweep.points
    assert high.l0 < low.l0
    assert high.explained_variance < low.explained_variance
    hist = low.histogram
    assert sum(hist.counts) + hist.dead == 128


def test_dead_feature_methods_share_everything_until_a_feature_dies(tiny, tmp_path):
    model, train, held_out, base = tiny
    # With a window longer than the run no feature is ever declared dead: identical runs.
    long_window = replace(base, dead_window=1000, resample_every=1000)
    same = run_dead_feature_comparison(model, train, held_out, base=long_window, progress=False)
    assert same.runs["none"].log == same.runs["ghost"].log == same.runs["resample"].log
    assert all(v == 0 for v in same.runs["ghost"].log["ghost"])
    # A strong L1 and a short window kill features; then ghost grads add a non-zero term.
    strong = replace(base, lr=5e-2, sae=replace(base.sae, l1_coeff=30.0))
    runs = run_dead_feature_comparison(model, train, held_out, base=strong, progress=False)
    assert max(runs.runs["none"].log["dead_fraction"]) > 0
    assert any(v > 0 for v in runs.runs["ghost"].log["ghost"])
    assert runs.runs["none"].log["mse"] != runs.runs["ghost"].log["mse"]
    loaded = load_dead_feature_comparison(save_json(runs, tmp_path / "d.json"))
    assert loaded.runs["ghost"].log == runs.runs["ghost"].log
    assert math.isclose(loaded.runs["none"].final["l0"], runs.runs["none"].final["l0"])


def test_comparison_loader_rejects_logs_of_unequal_length(tiny, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(
        json.dumps(
            {
                "schema": 1,
                "kind": "dead_features",
                "settings": {},
                "runs": {
                    "none": {
                        "method": "none",
                        "seconds": 1.0,
                        "final": {},
                        "log": {
                            "step": [1, 2],
                            "mse": [1.0],
                            "l1": [1.0, 1.0],
                            "ghost": [0, 0],
                            "l0": [1, 1],
                            "dead_fraction": [0, 0],
                            "explained_variance": [0.5, 0.5],
                            "resampled": [0, 0],
                        },
                    }
                },
            }
        )
    )
    with pytest.raises(ValueError, match=r"runs.none.log.mse"):
        load_dead_feature_comparison(path)


def test_shipped_files_load_and_hold_at_least_five_l1_values():
    sweep = load_l1_sweep(default_path(SWEEP_FILE))
    assert len(sweep.points) >= 5
    assert sweep.settings["train_config"]["sae"]["d_in"] == 512
    comparison = load_dead_feature_comparison(default_path(DEAD_FILE))
    assert set(comparison.runs) == {"none", "ghost", "resample"}
