"""The mini model: tokenizer, TransformerLens build, save/load, training and the shipped assets."""

from __future__ import annotations

import json

import pytest
import torch

from tutorial_sae.analysis import quality
from tutorial_sae.build import mini_model as zoo
from tutorial_sae.data import corpus
from tutorial_sae.models.mini import (
    MiniModelConfig,
    assets_dir,
    build_model,
    load_mini_model,
    make_tokenizer,
    save_model,
)

TEXTS = {
    "en": [
        "The quick brown fox jumps over the lazy dog. " * 20,
        "And God said, Let there be light.",
    ],
    "code": [
        "def add(a, b):\n    return a + b\n\n\nfor i in range(10):\n    print(add(i, i))\n" * 8
    ],
    "zh": ["中华人民共和国成立于一九四九年。人民日报报道了这个消息。" * 10],
    "ar": ["بسم الله الرحمن الرحيم. الحمد لله رب العالمين. " * 10],
}
TINY = MiniModelConfig(d_vocab=300, d_model=32, n_heads=2, n_ctx=32, seed=3)


def tiny_train_cfg(**kwargs) -> zoo.MiniTrainConfig:
    defaults = dict(steps=6, batch_size=8, lr=1e-2, warmup_steps=2, checkpoint_every=3)
    return zoo.MiniTrainConfig(**{**defaults, **kwargs})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def raw_tokenizer():
    return zoo.train_tokenizer(TEXTS, zoo.TokenizerConfig(vocab_size=300, mb_per_language=0.01))


@pytest.fixture(scope="module")
def tokenizer(raw_tokenizer):
    return make_tokenizer(raw_tokenizer)


@pytest.fixture(scope="module")
def streams(raw_tokenizer):
    return zoo.tokenize_streams(raw_tokenizer, TEXTS)


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_make_tokenizer_round_trips_and_prepends_bos(tokenizer):
    text = "def f(x): return x  # 中文 and العربية, naïve"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.pad_token is not None and tokenizer.eos_token is not None
    assert len(tokenizer) == 300


def test_make_tokenizer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="tokenizer.json path or tokenizers.Tokenizer"):
        make_tokenizer(42)
    with pytest.raises(FileNotFoundError):
        make_tokenizer(tmp_path / "nope.json")


def test_config_rejects_heads_that_do_not_divide_d_model():
    with pytest.raises(ValueError, match="divisible"):
        MiniModelConfig(d_model=30, n_heads=4)
    assert MiniModelConfig().d_mlp == 4 * MiniModelConfig().d_model


def test_build_model_forward_shapes_and_hook_names(tokenizer):
    model = build_model(TINY, tokenizer)
    assert (model.cfg.n_layers, model.cfg.act_fn, model.cfg.d_mlp) == (1, "gelu", 4 * 32)
    tokens = model.to_tokens(["hello world", "def f(x):"], padding_side="right")
    logits, cache = model.run_with_cache(tokens)
    assert logits.shape == (2, tokens.shape[1], 300)
    assert cache["blocks.0.mlp.hook_post"].shape == (2, tokens.shape[1], TINY.d_mlp)
    assert tokens[0, 0].item() == tokenizer.bos_token_id


def test_build_model_rejects_tokenizer_of_other_size(tokenizer):
    with pytest.raises(ValueError, match="d_vocab=512"):
        build_model(MiniModelConfig(d_vocab=512, d_model=32, n_heads=2), tokenizer)


def test_save_load_round_trip_gives_same_logits(tokenizer, tmp_path):
    model = build_model(TINY, tokenizer)
    save_model(model, TINY, tmp_path, {"note": "test"})
    loaded = load_mini_model("cpu", tmp_path)
    tokens = model.to_tokens("The quick brown fox 中华人民")
    assert torch.equal(loaded.to_tokens("The quick brown fox 中华人民"), tokens)
    # fp16 storage: logits agree to fp16 precision of the weights, not bit for bit.
    torch.testing.assert_close(loaded(tokens), model(tokens), atol=2e-2, rtol=1e-2)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert json.loads((tmp_path / "config.json").read_text())["note"] == "test"


def test_load_reports_missing_and_corrupt_assets(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing tokenizer.json"):
        load_mini_model("cpu", tmp_path)
    save_model(build_model(TINY, tokenizer), TINY, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FileNotFoundError, match="unusable"):
        load_mini_model("cpu", tmp_path)


def test_batches_start_with_bos_and_follow_the_mixture(streams):
    cfg = tiny_train_cfg(batch_size=20)
    batch = zoo.sample_batch(streams, cfg, step=5, bos=0, n_ctx=32)
    assert batch.shape == (20, 32) and (batch[:, 0] == 0).all() and (batch[:, 1:] != 0).all()
    assert zoo.batch_counts(cfg.mixture, 20) == {"en": 6, "code": 6, "zh": 5, "ar": 3}
    assert torch.equal(batch, zoo.sample_batch(streams, cfg, step=5, bos=0, n_ctx=32))


def test_training_lowers_the_loss(tokenizer, streams):
    model = build_model(TINY, tokenizer)
    result = zoo.train_mini_model(model, streams, tiny_train_cfg(steps=30), progress=False)
    assert sum(result.losses[-5:]) / 5 < result.losses[0] - 1.5
    assert result.tokens_seen == 30 * 8 * 32


def test_same_seed_gives_same_weights(tokenizer, streams):
    runs = []
    for _ in range(2):
        model = build_model(TINY, tokenizer)
        zoo.train_mini_model(model, streams, tiny_train_cfg(), progress=False)
        runs.append(params(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = build_model(MiniModelConfig(**{**TINY.to_dict(), "seed": 4}), tokenizer)
    assert not torch.equal(params(other)["embed.W_E"], runs[0]["embed.W_E"])


def test_resume_matches_an_uninterrupted_run(tokenizer, streams, tmp_path, monkeypatch):
    cfg = tiny_train_cfg()
    whole = build_model(TINY, tokenizer)
    zoo.train_mini_model(whole, streams, cfg, tmp_path / "a.pt", progress=False)

    real_sample = zoo.sample_batch

    def crash_at_step_4(streams, cfg, step, bos, n_ctx):
        if step == 4:
            raise KeyboardInterrupt
        return real_sample(streams, cfg, step, bos, n_ctx)

    monkeypatch.setattr(zoo, "sample_batch", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        zoo.train_mini_model(
            build_model(TINY, tokenizer), streams, cfg, tmp_path / "b.pt", progress=False
        )
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(zoo, "sample_batch", real_sample)
    resumed = build_model(TINY, tokenizer)
    result = zoo.train_mini_model(
        resumed, streams, cfg, tmp_path / "b.pt", resume=True, progress=False
    )
    assert len(result.losses) == cfg.steps
    expected = params(whole)
    assert all(torch.equal(expected[k], v) for k, v in params(resumed).items())
    with pytest.raises(ValueError, match="checkpoint was trained with"):
        zoo.train_mini_model(
            build_model(TINY, tokenizer), streams, tiny_train_cfg(lr=0.5), tmp_path / "b.pt", True
        )


def test_shipped_mini_model_loads_and_beats_bigram():
    folder = assets_dir()
    model = load_mini_model("cpu")
    assert (model.cfg.n_layers, model.cfg.act_fn) == (1, "gelu")
    assert model.cfg.d_mlp == 4 * model.cfg.d_model
    assert (folder / "model.safetensors").stat().st_size <= 3 * 2**20
    report = json.loads((folder / "quality.json").read_text(encoding="utf-8"))
    rows = report["loss_nats_per_token"]
    assert set(rows) == set(corpus.LANGUAGES)
    for lang, row in rows.items():
        assert row["model"] < row["bigram"] < row["unigram"], lang
    if not corpus.is_built():
        return
    # Recompute on every 8th eval window (32 per language, spread over the whole split): the
    # shipped quality.json must describe the shipped weights, not an earlier run.
    raw = model.tokenizer.backend_tokenizer
    bos, n_ctx = model.tokenizer.bos_token_id, model.cfg.n_ctx
    for lang in corpus.LANGUAGES:
        stream = zoo.tokenize_streams(raw, {lang: corpus.load_texts("eval", lang)})[lang]
        windows = quality.eval_windows(stream, n_ctx, bos, rows[lang]["eval_tokens"] // (n_ctx - 1))
        loss = quality.model_loss(model, windows[::8])
        assert abs(loss - rows[lang]["model"]) < 0.25, (lang, loss, rows[lang]["model"])
        assert loss < rows[lang]["unigram"] - 1, lang
