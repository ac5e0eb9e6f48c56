"""The online path without a network: "auto" against a stand-in hub on 127.0.0.1 loads gelu-1l,
Nanda's run1/run2 SAEs and c4-code-20k rows, tokenizes as tokenizer.json says, and evaluates."""

import json
import time

import pytest
import torch
from hub_fixture.plugin import fixture_hub  # noqa: F401  (the session fixture)
from hub_fixture.repos import C4_CODE_REPO, GELU_1L_REPO, SAE_REPO, TOKENIZER_REPO

from tutorial_sae.models import loading


@pytest.fixture(scope="module")
def online(fixture_hub, tmp_path_factory):  # noqa: F811
    """One hub cache and one "auto" session for the module: what a reader on Colab gets."""
    torch.set_num_threads(1)
    with fixture_hub.environment(tmp_path_factory.mktemp("online-cache")):
        fixture_hub.hub.log.clear()
        yield fixture_hub


@pytest.fixture(scope="module")
def gelu(online):
    start = time.perf_counter()
    model = loading.load_model("auto", device="cpu")
    return model, time.perf_counter() - start


def test_auto_resolves_to_gelu_1l_with_its_exact_config(online, gelu, capsys):
    model, seconds = gelu
    assert loading.resolve_auto().model == "gelu-1l"
    cfg = model.cfg
    got = (cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.d_vocab, cfg.n_ctx, cfg.n_heads, cfg.d_head)
    assert got == (1, 512, 2048, 48262, 1024, 8, 64)
    assert cfg.act_fn == "gelu" and cfg.normalization_type == "LNPre", "LN folded, as TL loads it"
    assert model.W_E.shape == (48262, 512) and model.blocks[0].mlp.W_in.shape == (512, 2048)
    assert seconds < 60


def test_served_weights_are_the_ones_loaded(online, gelu):
    """The embedding as served, centred by TransformerLens (center_writing_weights)."""
    served = torch.load(online.hub.repos[GELU_1L_REPO].files["model_final.pth"], weights_only=True)[
        "embed.W_E"
    ]
    centred = served - served.mean(-1, keepdim=True)
    torch.testing.assert_close(gelu[0].W_E.detach(), centred, rtol=0, atol=1e-6)


def test_digits_split_as_tokenizer_json_says(online, gelu):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    model = gelu[0]
    raw = Tokenizer.from_file(str(online.hub.repos[TOKENIZER_REPO].files["tokenizer.json"]))
    assert model.to_tokens("12345", prepend_bos=False).shape == (1, 5)
    assert model.tokenizer.convert_ids_to_tokens(model.to_tokens("12345")[0]) == [
        "<|endoftext|>",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    docs = ["x = 12345 in 2020", "port 8080, 3.14159 and 1e-12", *online.texts(40)]
    for doc in docs:
        ours = model.tokenizer(doc, add_special_tokens=False)["input_ids"]
        assert ours == raw.encode(doc, add_special_tokens=False).ids, doc
    # What transformers 5 makes of the same repo: the digit split is gone (why the loader builds
    # the tokenizer from tokenizer.json itself).
    auto = AutoTokenizer.from_pretrained(TOKENIZER_REPO, cache_dir=online.env()["HF_HUB_CACHE"])
    assert len(auto("12345", add_special_tokens=False)["input_ids"]) < 5


def test_run1_and_run2_load_with_nandas_shapes_and_configs(online, gelu):
    run1 = loading.load_sae("auto", device="cpu")
    run2 = loading.load_sae("gelu-1l/run2", device="cpu")
    for sae, version in ((run1, 25), (run2, 47)):
        served = json.loads(online.hub.repos[SAE_REPO].files[f"{version}_cfg.json"].read_text())
        assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.seed) == (2048, 16384, served["seed"])
        assert sae.cfg.l1_coeff == pytest.approx(3e-4 * 4096)
    assert not torch.equal(run1.W_enc, run2.W_enc)


def test_c4_code_rows_and_evaluate_sae(online, gelu):
    from tutorial_sae.analysis.evaluation import evaluate_sae

    model = gelu[0]
    tokens = loading.load_tokens("auto", "eval", n_tokens=4 * 128, seq_len=128)
    train = loading.load_tokens("auto", "train", n_tokens=4 * 128, seq_len=128)
    assert tokens.shape == train.shape == (4, 128)
    assert (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    assert tokens.max() < len(model.tokenizer) and not torch.equal(tokens, train)
    again = loading.load_tokens("auto", "eval", n_tokens=4 * 128, tokenizer=model.tokenizer)
    assert torch.equal(tokens, again), "the same rows with the model's own tokenizer"
    metrics = evaluate_sae(
        model, loading.load_sae("auto", device="cpu"), tokens[:2, :32], batch_size=2, progress=False
    )
    assert 0 < metrics.l0 < 16384 and metrics.mse > 0


def test_every_request_was_to_an_endpoint_the_hub_serves(online, gelu):
    loading.load_tokens("auto", "eval", n_tokens=128)
    shapes = online.hub.endpoints()
    failed = [s for s in shapes if s.endswith(("-> 500", "-> 501", "-> 503"))]
    assert not failed
    assert "hub HEAD /api/models/{repo} -> 200" in shapes  # the package's probe
    assert "hub GET /api/models/{repo}/tree/{rev}/... -> 200" in shapes  # TL lists gelu-1l
    assert "hub HEAD /{repo}/resolve/{rev}/{file} -> 302" in shapes  # a large file's metadata
    assert "cdn GET /_lfs/{sha256} -> 200" in shapes  # ... and its download
    assert "hub GET /api/datasets/{repo}/revision/{rev} -> 200" in shapes
    assert any(C4_CODE_REPO in path for _, _, path, _ in online.hub.log)
    assert not online.hub.unrouted


def test_chapter_8_auto_falls_back_to_the_fact_model_when_gpt2_is_not_served(online, capsys):
    """The hub answers (so "auto" tries GPT-2 small) but has no GPT-2 repo: one line, the shipped
    fact model, within the 5 s the other loaders get."""
    from tutorial_sae.models.facts import GPT2_REPO, load_fact_setup

    capsys.readouterr()
    start = time.perf_counter()
    setup = load_fact_setup("auto")
    seconds = time.perf_counter() - start
    assert setup.name == "facts" and setup.fact_model is not None
    said = capsys.readouterr().out
    assert GPT2_REPO in said and "fact model" in said, said
    assert "404" in said and "couldn't connect" not in said.split("404")[0], said
    assert seconds < 5, seconds
