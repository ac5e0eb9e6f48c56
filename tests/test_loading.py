"""Loaders by name: Nanda's SAEs from a real-layout local hub cache, "auto" without a network,
the mini model and SAEs from asset folders, and token batches from a small offline corpus."""

import http.server
import json
import pickle
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from hub_fixture.repos import SAE_CONFIG as NANDA_CFG  # Nanda's cfg, as the stand-in hub serves it
from huggingface_hub import constants

from tutorial_sae.build.mini_model import TokenizerConfig, train_tokenizer
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.data import hub
from tutorial_sae.data import tokens as token_data
from tutorial_sae.models import loading
from tutorial_sae.models.mini import MiniModelConfig, build_model, make_tokenizer, save_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def snapshot_dir(cache: Path, repo: str = loading.HUB_SAE_REPO) -> Path:
    return cache / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT


def write_hub_cache(cache: Path, files: dict[str, bytes], repo: str = loading.HUB_SAE_REPO):
    """The hub library's cache layout: refs/main names a snapshot holding the files."""
    snapshot = snapshot_dir(cache, repo)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)


def torch_bytes(obj, tmp: Path) -> bytes:
    path = tmp / "obj.pt"
    torch.save(obj, path)
    return path.read_bytes()


def nanda_state(d_mlp: int, d_sae: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_mlp, generator=gen)
    # Rows near unit norm but not on it, like run1's un-renormalised decoder.
    norms = 1 + 0.05 * torch.rand(d_sae, 1, generator=gen)
    return {
        "W_enc": torch.randn(d_mlp, d_sae, generator=gen),
        "W_dec": w_dec / w_dec.norm(dim=-1, keepdim=True) * norms,
        "b_enc": torch.randn(d_sae, generator=gen),
        "b_dec": torch.randn(d_mlp, generator=gen),
    }


@pytest.fixture(autouse=True)
def isolated_hub(monkeypatch, tmp_path):
    """Offline, an empty hub cache and no remembered "auto" choice; all restored afterwards."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(loading, "_auto_choice", None)
    monkeypatch.setattr(hub, "_last_success", 0.0)
    if "datasets.config" in sys.modules:
        monkeypatch.setattr(sys.modules["datasets.config"], "HF_HUB_OFFLINE", True)


def go_online(monkeypatch, endpoint: str):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)


def test_run1_loads_from_the_local_hub_cache_with_its_weights_unchanged(tmp_path):
    # Real size (W_enc 2048 x 16384, 268 MB): the shapes the loader must accept are the real ones.
    state = nanda_state(2048, 16384, seed=1)
    write_hub_cache(tmp_path / "hub", {"25_cfg.json": json.dumps(NANDA_CFG).encode()})
    torch.save(state, snapshot_dir(tmp_path / "hub") / "25.pt")
    sae = loading.load_sae("gelu-1l/run1", device="cpu")
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.seed) == (2048, 16384, 49)
    assert sae.cfg.l1_coeff == pytest.approx(3e-4 * 4096)
    for key in loading.HUB_SAE_KEYS:
        torch.testing.assert_close(getattr(sae, key).detach(), state[key], rtol=0, atol=0)
    norms = sae.W_dec.norm(dim=-1)
    assert norms.min() > 1.0 and norms.max() > 1.04, "run1's decoder norms stay as trained"


def test_run2_reads_checkpoint_47(tmp_path):
    cfg = {**NANDA_CFG, "d_mlp": 16, "dict_mult": 2, "seed": 7}
    state = nanda_state(16, 32)
    write_hub_cache(
        tmp_path / "hub",
        {"47.pt": torch_bytes(state, tmp_path), "47_cfg.json": json.dumps(cfg).encode()},
    )
    sae = loading.load_sae("gelu-1l/run2", device="cpu")
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.seed) == (16, 32, 7)
    torch.testing.assert_close(sae.W_enc.detach(), state["W_enc"])


def small_run1(tmp_path, state=None, cfg=None, weights: bytes | None = None):
    cfg = {**NANDA_CFG, "d_mlp": 16, "dict_mult": 2} if cfg is None else cfg
    if weights is None:
        weights = torch_bytes(nanda_state(16, 32) if state is None else state, tmp_path)
    cfg_bytes = cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode()
    write_hub_cache(tmp_path / "hub", {"25.pt": weights, "25_cfg.json": cfg_bytes})


def test_missing_tensor_is_named(tmp_path):
    state = nanda_state(16, 32)
    del state["b_dec"]
    small_run1(tmp_path, state=state)
    with pytest.raises(ValueError, match=r"missing \['b_dec'\]"):
        loading.load_sae("gelu-1l/run1")


def test_wrong_shapes_are_reported(tmp_path):
    state = nanda_state(16, 32)
    state["W_dec"] = state["W_dec"][:, :8]
    small_run1(tmp_path, state=state)
    with pytest.raises(ValueError, match=r"expected shapes .*W_dec.*\(32, 16\).*got"):
        loading.load_sae("gelu-1l/run1")


def test_config_that_disagrees_with_the_weights_is_reported(tmp_path):
    small_run1(tmp_path, cfg={**NANDA_CFG, "d_mlp": 16, "dict_mult": 8})
    with pytest.raises(ValueError, match="dict_mult=8"):
        loading.load_sae("gelu-1l/run1")


def test_file_that_is_not_a_torch_file_is_reported(tmp_path):
    small_run1(tmp_path, weights=b"<html>rate limited</html>")
    with pytest.raises(ValueError, match="expected a torch weights file"):
        loading.load_sae("gelu-1l/run1")


def test_config_that_is_not_json_is_reported(tmp_path):
    small_run1(tmp_path, cfg=b"\x89PNG not json")
    with pytest.raises(ValueError, match="expected a JSON config"):
        loading.load_sae("gelu-1l/run1")


class _TouchOnLoad:
    """Unpickling this would create a file: the shape of a malicious checkpoint."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("dump", ["torch.save", "pickle"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, dump):
    marker = tmp_path / "pwned"
    state = {**nanda_state(16, 32), "extra": _TouchOnLoad(marker)}
    data = torch_bytes(state, tmp_path) if dump == "torch.save" else pickle.dumps(state, protocol=2)
    small_run1(tmp_path, weights=data)
    with pytest.raises(ValueError, match="refused"):
        loading.load_sae("gelu-1l/run1")
    assert not marker.exists()


def test_sae_missing_from_the_offline_cache_fails_at_once(tmp_path):
    start = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError, match="25_cfg.json.*offline"):
        loading.load_sae("gelu-1l/run1")
    assert time.perf_counter() - start < 2


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['mini', 'gelu-1l', 'auto'\], got 'gpt2'"):
        loading.load_model("gpt2")
    with pytest.raises(ValueError, match=r"'gelu-1l/run1', 'gelu-1l/run2', 'auto'\], got"):
        loading.load_sae("gelu-1l/run3")


@pytest.fixture
def silent_server():
    """A local port that accepts connections and never answers: a hub that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_auto_decides_within_5_s_when_the_hub_hangs_and_goes_offline(monkeypatch, silent_server):
    go_online(monkeypatch, silent_server)
    start = time.perf_counter()
    choice = loading.resolve_auto()
    elapsed = time.perf_counter() - start
    assert choice.model == "mini"
    assert "did not answer" in choice.reason
    assert elapsed < 5
    assert hub.hub_offline(), "later hub calls must not wait either"
    assert loading.resolve_auto() is choice, "decided once per session"


@pytest.fixture
def answering_server():
    """A local stand-in for the hub that answers every request with 200."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_auto_chooses_gelu_1l_when_the_hub_answers(monkeypatch, answering_server):
    go_online(monkeypatch, answering_server)
    choice = loading.resolve_auto()
    assert choice.model == "gelu-1l" and "answered HTTP 200" in choice.reason
    assert not hub.hub_offline()
    assert str(choice).startswith("auto: using gelu-1l (the hub answered HTTP 200 in ")


def test_auto_uses_mini_when_the_hub_refuses(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connecting is refused
    go_online(monkeypatch, f"http://127.0.0.1:{port}")
    choice = loading.resolve_auto()
    assert choice.model == "mini" and "unreachable" in choice.reason


def test_gelu_1l_offline_fails_fast_with_a_pointer_to_mini():
    start = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError, match="load_model\\('mini'\\)"):
        loading.load_model("gelu-1l", device="cpu")
    assert time.perf_counter() - start < 5


@pytest.fixture(scope="module")
def tokenizer():
    texts = {
        "en": ["the cat sat on the mat and the dog ran far away " * 3] * 30,
        "code": ["def add(a, b):\n    return a + b\n" * 3] * 30,
        "zh": ["中国人民今天很高兴我们一起学习语言模型" * 3] * 30,
        "ar": ["بسم الله الرحمن الرحيم الحمد لله رب العالمين" * 3] * 30,
    }
    return make_tokenizer(train_tokenizer(texts, TokenizerConfig(vocab_size=400)))


@pytest.fixture
def mini_assets(tmp_path, monkeypatch, tokenizer):
    """A mini model and two SAEs written by the real savers into stand-in asset folders."""
    cfg = MiniModelConfig(d_vocab=len(tokenizer), d_model=16, n_heads=2, n_ctx=32)
    save_model(build_model(cfg, tokenizer), cfg, tmp_path / "mini")
    for name, d_sae in (("run1", 128), ("32x", 2048)):
        SAE(SAEConfig(d_in=cfg.d_mlp, d_sae=d_sae)).save(tmp_path / "mini" / "saes" / name)
    monkeypatch.setattr("tutorial_sae.models.mini.assets_dir", lambda: tmp_path / "mini")
    monkeypatch.setattr(loading, "mini_sae_dir", lambda: tmp_path / "mini" / "saes")
    return cfg


def test_auto_offline_loads_mini_and_says_so_in_one_line(mini_assets, capsys):
    start = time.perf_counter()
    model = loading.load_model("auto", device="cpu")
    assert time.perf_counter() - start < 5
    assert model.cfg.d_model == 16 and model.tokenizer is not None
    assert capsys.readouterr().out == "auto: using mini (HF_HUB_OFFLINE is set)\n"
    sae = loading.load_sae("auto", device="cpu")
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (64, 128), "auto pairs mini with mini/run1"


def test_mini_sae_names_come_from_the_asset_folders(mini_assets):
    names = loading.sae_names()
    assert names == ("mini/32x", "mini/run1", "gelu-1l/run1", "gelu-1l/run2", "auto")
    assert loading.load_sae("mini/32x", device="cpu").cfg.d_sae == 2048


def write_corpus(cache: Path, n_docs: int = 40):
    from tutorial_sae.data import corpus

    docs = {
        "en": "the cat sat on the mat and the dog ran far away {} ",
        "code": "def add(a, b):\n    return a + b  # {}\n",
        "zh": "中国人民今天很高兴我们一起学习语言模型{}",
        "ar": "بسم الله الرحمن الرحيم الحمد لله رب العالمين {}",
    }
    root = cache / f"corpus-v{corpus.CORPUS_VERSION}"
    for split in corpus.SPLITS:
        (root / split).mkdir(parents=True)
        for lang, text in docs.items():
            lines = [json.dumps({"text": text.format(i) * 4, "source": "t"}) for i in range(n_docs)]
            (root / split / f"{lang}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "COMPLETE").write_text("test\n")


@pytest.fixture
def small_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_SAE_CACHE", str(tmp_path / "cache"))
    write_corpus(tmp_path / "cache")
    return tmp_path / "cache"


def test_mini_tokens_start_with_bos_follow_the_mixture_and_repeat(small_corpus, tokenizer):
    tokens = loading.load_tokens("mini", "eval", 20 * 16, seq_len=16, tokenizer=tokenizer)
    assert tokens.shape == (20, 16) and tokens.dtype == torch.int64
    assert (tokens[:, 0] == tokenizer.bos_token_id).all()
    assert (tokens[:, 1:] != tokenizer.bos_token_id).all()
    cached = sorted(p.name for p in (small_corpus / "tokens").iterdir())
    assert len(cached) == 4 and all(p.endswith(".npy") for p in cached)
    again = loading.load_tokens("mini", "eval", 20 * 16, seq_len=16, tokenizer=tokenizer)
    torch.testing.assert_close(tokens, again)
    texts = [tokenizer.decode(row[1:]) for row in tokens]
    by_lang = {
        "zh": sum("中" in t or "语" in t for t in texts),
        "ar": sum("الله" in t or "رب" in t for t in texts),
        "code": sum("return" in t or "def" in t for t in texts),
    }
    # zoo.MIXTURE of 20 rows: en 6, code 6, zh 5, ar 3.
    assert by_lang == {"zh": 5, "ar": 3, "code": 6}


def test_one_language_and_a_new_seed(small_corpus, tokenizer):
    zh = loading.load_tokens("mini", "train", 100, seq_len=10, lang="zh", tokenizer=tokenizer)
    assert zh.shape == (10, 10)
    assert all("中" in tokenizer.decode(r[1:]) or "学" in tokenizer.decode(r[1:]) for r in zh)
    other = loading.load_tokens(
        "mini", "train", 100, seq_len=10, lang="zh", tokenizer=tokenizer, seed=1
    )
    assert not torch.equal(zh, other)


def test_asking_for_more_tokens_than_exist_says_how_many_do(small_corpus, tokenizer):
    with pytest.raises(
        ValueError,
        match=r"expected at most \d+ sequences of 16 tokens in the eval split of \w+, got \d+",
    ):
        loading.load_tokens("mini", "eval", 10**7, seq_len=16, tokenizer=tokenizer)


def test_windows_are_consecutive_and_mixture_counts_sum_exactly():
    import numpy as np

    rows = token_data.windows_of(np.arange(1, 11, dtype=np.int32), seq_len=4, bos=0)
    assert rows.tolist() == [[0, 1, 2, 3], [0, 4, 5, 6], [0, 7, 8, 9]]
    counts = token_data.mixture_counts((("a", 0.5), ("b", 0.3), ("c", 0.2)), 7)
    assert counts == {"a": 4, "b": 2, "c": 1}
    assert sum(token_data.mixture_counts((("a", 1 / 3), ("b", 2 / 3)), 1000).values()) == 1000


def test_c4_code_eval_rows_are_held_out_from_train():
    train, held = token_data.c4_code_rows("train", 20_000), token_data.c4_code_rows("eval", 20_000)
    assert len(held) == 1000 and len(train) == 19_000 and not set(train) & set(held)


def test_c4_code_offline_fails_at_once_with_a_pointer_to_mini(tokenizer, tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("TUTORIAL_SAE_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError, match="c4-code-20k.*use the mini model"):
        loading.load_tokens("gelu-1l", "eval", 1000, tokenizer=tokenizer)
    assert time.perf_counter() - start < 5


def test_bad_token_requests_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="expected split in"):
        token_data.tokens_for("mini", tokenizer, "test", 100)
    with pytest.raises(ValueError, match="lang=None for gelu-1l"):
        token_data.tokens_for("gelu-1l", tokenizer, "eval", 100, lang="en")
    with pytest.raises(ValueError, match="seq_len >= 2"):
        token_data.windows_of(token_data.np.zeros(4, dtype="int32"), 1, 0)


def test_shipped_mini_model_loads_and_tokenizes_its_own_data(small_corpus):
    model = loading.load_model("mini", device="cpu")
    assert model.cfg.n_layers == 1 and model.cfg.act_fn == "gelu"
    assert "blocks.0.mlp.hook_post" in model.hook_dict
    tokens = loading.load_tokens("mini", "eval", 8 * 32, seq_len=32)
    assert tokens.shape == (8, 32)
    assert (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    loss = model(tokens, return_type="loss")
    assert torch.isfinite(loss) and loss < 10


def test_tokenizer_fingerprint_ignores_the_padding_transformer_lens_sets():
    from tutorial_sae.models.mini import load_mini_model

    model = load_mini_model("cpu")
    before = token_data.tokenizer_fingerprint(model.tokenizer)
    model.to_tokens(["a short one", "and a somewhat longer second text"])
    assert token_data.tokenizer_fingerprint(model.tokenizer) == before


@pytest.mark.parametrize(
    "field, value", [("l1_coeff", None), ("l1_coeff", "3e-4"), ("batch_size", 40.5), ("seed", True)]
)
def test_a_hub_config_field_that_is_null_or_ill_typed_is_named(field, value):
    state = {
        "W_enc": torch.zeros(4, 8),
        "W_dec": torch.zeros(8, 4),
        "b_enc": torch.zeros(8),
        "b_dec": torch.zeros(4),
    }
    cfg = {"l1_coeff": 3e-4, "batch_size": 4096, "seed": 49, field: value}
    with pytest.raises(ValueError, match=f"SAE config's '{field}' to be a finite"):
        loading.sae_from_nanda(state, cfg)


def test_sae_ladder_names_each_models_saes_smallest_first():
    ladder = loading.sae_ladder("mini")
    assert ladder == {"1,024": "mini/x2", "2,048": "mini/x4", "4,096": "mini/run1"}
    sizes = [loading.load_sae(name, device="cpu").cfg.d_sae for name in ladder.values()]
    assert [f"{d:,}" for d in sizes] == list(ladder), "each label is its SAE's d_sae"
    assert loading.sae_ladder("gelu-1l") == {"run2": "gelu-1l/run2", "run1": "gelu-1l/run1"}
    assert set(loading.sae_ladder("gelu-1l").values()) <= set(loading.sae_names())
    with pytest.raises(ValueError, match="expected model name in"):
        loading.sae_ladder("auto")
