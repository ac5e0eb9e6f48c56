"""Chapter 3's cell helpers (analysis.training_run, ModelPreset.train_config): equal to the cells'
old inline code."""

from types import SimpleNamespace

import pytest
import torch

from tutorial_sae.analysis.sweeps import (
    load_dead_feature_comparison,
    run_dead_feature_comparison,
)
from tutorial_sae.analysis.training_run import (
    TokenSplits,
    comparison_summary,
    comparison_values,
    dead_feature_comparison,
    describe_training_data,
    describe_training_speed,
    load_token_splits,
)
from tutorial_sae.core.sae import SAEConfig
from tutorial_sae.models.mini import MiniModelConfig, build_model
from tutorial_sae.training.presets import BASE, DEAD_BASE, PRESETS, sized_for
from tutorial_sae.training.trainer import TrainConfig, TrainResult


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_train_config_equals_the_cells_old_sized_for(name):
    preset = PRESETS[name]
    new = preset.train_config(
        BASE, "preset", "preset", n_steps=40, batch_size=512, dead_window=50, seed=49
    )
    old = sized_for(
        BASE,
        preset.d_mlp,
        preset.value("expansion", "preset"),
        preset.value("l1_coeff", "preset"),
        n_steps=40,
        batch_size=512,
        dead_window=50,
        log_every=max(1, 40 // 40),
        seed=49,
    )
    assert new == old
    assert new.sae.d_sae == preset.expansion * preset.d_mlp
    assert preset.train_config(BASE, 2, 0.5, n_steps=200).log_every == 5
    assert preset.train_config(BASE, n_steps=200, log_every=7).log_every == 7
    # no n_steps: the base's log_every (chapter 3.4's DEAD_BASE call)
    dead = preset.train_config(DEAD_BASE, 4, 1.3)
    assert dead == sized_for(DEAD_BASE, preset.d_mlp, 4, 1.3)
    assert dead.log_every == DEAD_BASE.log_every


def test_train_config_names_bad_input():
    preset = PRESETS["mini"]
    with pytest.raises(ValueError, match="positive int n_steps, got 0"):
        preset.train_config(BASE, n_steps=0)
    with pytest.raises(ValueError, match="'preset' for expansion, got 'big'"):
        preset.train_config(BASE, "big")
    with pytest.raises(ValueError, match="positive l1_coeff"):
        preset.train_config(BASE, 4, -1.0)


def test_fast_sizes_equal_fast_size_one_by_one():
    counts = (40, 512, 131_072, 4_096)
    gelu = PRESETS["gelu-1l"]
    assert gelu.fast_sizes(True, *counts) == tuple(gelu.fast_size(n, True) for n in counts)
    assert gelu.fast_sizes(True, *counts) == (5, 64, 16_384, 512)
    assert gelu.fast_sizes(False, *counts) == counts
    assert PRESETS["mini"].fast_sizes(True, *counts) == counts
    with pytest.raises(ValueError, match="positive int count"):
        gelu.fast_sizes(True, 40, 0)


def test_token_splits_equal_two_load_tokens_calls():
    from tutorial_sae.models.loading import load_model, load_tokens

    model = load_model("mini")
    splits = load_token_splits("mini", model, 1_000, 300)
    train = load_tokens("mini", "train", 1_000, tokenizer=model.tokenizer)
    held_out = load_tokens("mini", "eval", 300, tokenizer=model.tokenizer)
    assert torch.equal(splits.train, train) and torch.equal(splits.eval, held_out)
    assert tuple(splits.train.shape) == (8, 128) and tuple(splits.eval.shape) == (3, 128)
    with pytest.raises(ValueError, match="positive int n_eval, got 0"):
        load_token_splits("mini", model, 1_000, 0)
    with pytest.raises(TypeError, match="with a tokenizer, got str"):
        load_token_splits("mini", "mini", 1_000, 300)


def test_descriptions_equal_the_cells_old_prints():
    model = SimpleNamespace(cfg=SimpleNamespace(d_model=128, d_mlp=512))
    tokens = TokenSplits(torch.zeros(8, 128, dtype=torch.long), torch.zeros(3, 128))
    assert describe_training_data(model, PRESETS["mini"], tokens) == (
        "mini: d_model 128, d_mlp 512, hook blocks.0.mlp.hook_post\n"
        "train tokens: (8, 128) (sequences, positions); eval: (3, 128)"
    )
    result = TrainResult(sae=None, log=None, seconds=12.6, n_tokens=20_480)
    assert describe_training_speed(result) == "20,480 tokens in 13 s (1,625 tokens/s)"
    with pytest.raises(TypeError, match="TokenSplits, got tuple"):
        describe_training_data(model, PRESETS["mini"], (1, 2))
    with pytest.raises(TypeError, match="TrainResult from train_sae, got dict"):
        describe_training_speed({})


def test_comparison_values_are_the_cells_old_glue():
    comparison = load_dead_feature_comparison()
    values = comparison_values(comparison)
    assert values == {"lr_ratio": 3.0, "window": 25, **comparison_summary(comparison)}
    assert list(values)[:2] == ["lr_ratio", "window"]
    with pytest.raises(TypeError, match="DeadFeatureComparison, got dict"):
        comparison_values({})


def test_dead_feature_comparison_loads_or_retrains():
    shipped = load_dead_feature_comparison()
    assert dead_feature_comparison(False, None, None, None, DEAD_BASE) == shipped
    model = build_model(MiniModelConfig(d_vocab=64, d_model=16, n_heads=2, n_ctx=16), None)
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 64, (32, 16), generator=gen)
    held_out = torch.randint(0, 64, (4, 16), generator=gen)
    base = TrainConfig(
        sae=SAEConfig(d_in=64, d_sae=128, l1_coeff=1.0, seed=3),
        n_steps=6,
        batch_size=64,
        lr=1e-2,
        dead_window=2,
        resample_every=3,
        buffer_batches=4,
        model_batch_size=8,
        log_every=2,
        device="cpu",
        seed=3,
    )
    live = dead_feature_comparison(True, model, train, held_out, base)
    old = run_dead_feature_comparison(model, train, held_out, base=base)
    assert set(live.runs) == {"none", "ghost", "resample"}
    for method, run in live.runs.items():
        assert run.final == old.runs[method].final
        assert run.log == old.runs[method].log
    with pytest.raises(TypeError, match="bool"):
        dead_feature_comparison("yes", model, train, held_out, base)
    with pytest.raises(TypeError, match="TrainConfig base, got NoneType"):
        dead_feature_comparison(True, model, train, held_out, None)
