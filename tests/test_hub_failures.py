"""A hub that fails in every way we know of: "auto" falls back to mini within 5 s with one line
saying why, an explicit gelu-1l load names the repo and the cause, and the cache keeps nothing
half-written or corrupt. The stand-in hub (tests/hub_fixture) switches behaviours per test."""

import hashlib
import json
import socket
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from hub_fixture.plugin import fixture_hub  # noqa: F401  (the session fixture)
from hub_fixture.server import hanging_endpoint, refusing_endpoint

from tutorial_sae.data import hub
from tutorial_sae.models import loading

# mode -> what the one-line reason (and the explicit error) must mention
MODES = {
    "refuse": "unreachable",
    "hang": "did not answer",
    "all_500": "HTTP 500",
    "all_404": "HTTP 404",
    "files_503": "HTTP 503",
    "files_500": "HTTP 500",
    "drop_half": "RemoteProtocolError",
    "corrupt": "expected a valid tokenizer.json",
}
BUDGET_S = 5.0


@pytest.fixture(scope="module", autouse=True)
def imported():
    """Import costs are not the hub's: pay them before any clock starts."""
    import datasets  # noqa: F401
    import transformer_lens  # noqa: F401

    torch.set_num_threads(1)
    loading.load_model("mini", device="cpu")


def _endpoint(mode):
    if mode == "refuse":
        return refusing_endpoint()
    if mode == "hang":
        return hanging_endpoint()
    return nullcontext(None)


@pytest.fixture
def broken(fixture_hub, monkeypatch, tmp_path):  # noqa: F811
    """broken(mode, warm=()): the hub in `mode`, an empty cache except the `warm` files
    ((repo, filename) fetched while the hub still answered); returns the hub cache folder."""
    stack = []

    def make(mode, warm=()):
        cache = tmp_path / "cache"
        fixture_hub.activate(monkeypatch, cache)
        for repo, filename in warm:
            hub.download_hub_file(repo, filename)
        endpoint = _endpoint(mode)
        stack.append(endpoint)
        served = mode if mode in MODES_SERVED else "ok"
        fixture_hub.activate(monkeypatch, cache, served, endpoint.__enter__())
        return Path(fixture_hub.env(cache)["HF_HUB_CACHE"])

    yield make
    for endpoint in stack:
        endpoint.__exit__(None, None, None)


MODES_SERVED = ("files_503", "files_500", "all_500", "all_404", "drop_half", "corrupt")
TOKENIZER = (loading.GELU_1L_TOKENIZER_REPO, "tokenizer.json")
TOKENIZER_CFG = (loading.GELU_1L_TOKENIZER_REPO, "tokenizer_config.json")
GELU_CFG = (hub.GELU_1L_REPO, "config.json")
WARM = (TOKENIZER, TOKENIZER_CFG, GELU_CFG)  # the failure then hits TransformerLens' requests


def assert_cache_clean(cache: Path):
    """No partial download, no blob whose bytes differ from its name, no dangling link."""
    for path in cache.rglob("*") if cache.exists() else []:
        assert ".incomplete" not in path.name, path
        if path.is_symlink():
            assert path.exists(), f"dangling {path}"
        if path.parent.name == "blobs" and path.is_file():
            data = path.read_bytes()
            if len(path.name) == 64:
                assert hashlib.sha256(data).hexdigest() == path.name, path
            else:
                assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == path.name


def one_reason(capsys) -> str:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto: using mini ("), lines
    return lines[0]


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


CASES = [(mode, ()) for mode in MODES] + [
    (mode, WARM) for mode in ("files_503", "files_500", "drop_half", "corrupt")
]


@pytest.mark.parametrize(
    ("mode", "warm"), CASES, ids=[f"{m}-{'warm' if w else 'cold'}" for m, w in CASES]
)
def test_auto_model_falls_back_to_mini_in_one_line(broken, capsys, mode, warm):
    cache = broken(mode, warm)
    _, mini_s = timed(lambda: loading.load_model("mini", device="cpu"))  # not the hub's time
    capsys.readouterr()
    model, seconds = timed(lambda: loading.load_model("auto", device="cpu"))
    line = one_reason(capsys)
    assert model.cfg.d_mlp != 2048, "mini, not gelu-1l"
    assert seconds - mini_s < BUDGET_S, f"{mode}: {seconds:.1f} s, mini's own load {mini_s:.1f} s"
    expected = MODES[mode] if not warm or mode != "corrupt" else "model_final.pth is corrupt"
    assert expected in line, line
    assert hub.hub_offline(), "later calls must not wait either"
    assert loading.load_sae("auto", device="cpu").cfg.d_in == model.cfg.d_mlp
    assert_cache_clean(cache)
    print(f"{mode}{'-warm' if warm else ''}: {seconds:.2f} s (mini {mini_s:.2f} s): {line}")


@pytest.mark.parametrize("mode", list(MODES))
def test_explicit_gelu_1l_names_the_repo_and_the_cause(broken, mode):
    cache = broken(mode)
    start = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError) as info:
        loading.load_model("gelu-1l", device="cpu")
    assert time.perf_counter() - start < BUDGET_S
    message = str(info.value)
    assert hub.GELU_1L_REPO in message and MODES[mode] in message, message
    assert "\n" not in message
    assert_cache_clean(cache)


@pytest.mark.parametrize("mode", ["files_503", "drop_half", "corrupt", "all_500", "hang"])
def test_auto_sae_falls_back_to_mini_run1(broken, capsys, mode):
    cache = broken(mode)
    capsys.readouterr()
    sae, seconds = timed(lambda: loading.load_sae("auto", device="cpu"))
    line = one_reason(capsys)
    assert sae.cfg.d_in != 2048 and seconds < BUDGET_S, (sae.cfg, seconds)
    if mode in ("files_503", "drop_half", "corrupt"):
        assert "gelu-1l/run1 failed to load" in line, line
    assert_cache_clean(cache)


def test_corrupt_sae_weights_are_removed_and_named(broken):
    cache = broken("corrupt", warm=[(loading.HUB_SAE_REPO, "25_cfg.json")])
    with pytest.raises(ValueError, match="25.pt is corrupt or holds more than tensors; .* refused"):
        loading.load_sae("gelu-1l/run1", device="cpu")
    assert_cache_clean(cache)
    blobs = list(cache.rglob("blobs/*"))
    assert len(blobs) == 1, "only the config, fetched intact, stays"


def write_corpus(root: Path, n_docs: int = 40):
    from tutorial_sae.data import corpus

    docs = {
        "en": "the cat sat on the mat and the dog ran far away {} ",
        "code": "def add(a, b):\n    return a + b  # {}\n",
        "zh": "中国人民今天很高兴我们一起学习语言模型{}",
        "ar": "بسم الله الرحمن الرحيم الحمد لله رب العالمين {}",
    }
    folder = root / f"corpus-v{corpus.CORPUS_VERSION}"
    for split in corpus.SPLITS:
        (folder / split).mkdir(parents=True)
        for lang, text in docs.items():
            lines = [json.dumps({"text": text.format(i) * 4, "source": "t"}) for i in range(n_docs)]
            (folder / split / f"{lang}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "COMPLETE").write_text("test\n")


@pytest.mark.parametrize("mode", ["files_503", "drop_half", "corrupt", "files_500"])
def test_auto_tokens_fall_back_when_c4_code_fails(broken, capsys, monkeypatch, tmp_path, mode):
    cache = broken(mode, warm=(TOKENIZER, TOKENIZER_CFG))
    monkeypatch.setenv("TUTORIAL_SAE_CACHE", str(tmp_path / "package"))
    write_corpus(tmp_path / "package")
    capsys.readouterr()
    tokens, seconds = timed(lambda: loading.load_tokens("auto", "eval", n_tokens=256, seq_len=32))
    line = one_reason(capsys)
    assert "NeelNanda/c4-code-20k" in line and seconds < BUDGET_S, (line, seconds)
    mini = loading.load_model("mini", device="cpu").tokenizer
    assert tokens.shape == (8, 32) and (tokens[:, 0] == mini.bos_token_id).all()
    assert_cache_clean(cache)
    assert_cache_clean(cache.parent / "datasets")


def test_extra_hosts_are_off_and_blocked(fixture_hub, monkeypatch, tmp_path):  # noqa: F811
    """Download counters and the datasets-server are off during a load; a request to either
    host (from a library that ignores the switches) is refused at once, never sent."""
    import datasets.config
    from huggingface_hub import get_session

    fixture_hub.activate(monkeypatch, tmp_path / "cache")
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen(8)
        sink.setblocking(False)
        url = f"http://127.0.0.1:{sink.getsockname()[1]}/datasets"
        monkeypatch.setattr(datasets.config, "S3_DATASETS_BUCKET_PREFIX", url)
        monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", True)
        with hub.bounded_hub("test"):
            assert not datasets.config.HF_UPDATE_DOWNLOAD_COUNTS
            assert not datasets.config.USE_PARQUET_EXPORT
            for url in (
                f"{fixture_hub.url.replace('://', '://datasets-server.')}/info?dataset=x",
                "https://s3.amazonaws.com/datasets.huggingface.co/datasets/datasets/x/x.py",
            ):
                start = time.perf_counter()
                with pytest.raises(hub.HubGaveUpError, match="not contacted"):
                    get_session().get(url, timeout=100)
                assert time.perf_counter() - start < 0.5
        assert datasets.config.HF_UPDATE_DOWNLOAD_COUNTS, "restored after the load"
        tokens, seconds = timed(lambda: loading.load_tokens("auto", "eval", n_tokens=128))
        assert tokens.shape == (1, 128)
        with pytest.raises(BlockingIOError):
            sink.accept()  # nobody knocked: the download counter stayed off
    paths = [path for _, _, path, _ in fixture_hub.hub.log]
    assert not any("datasets-server" in p or "/info?" in p or "/parquet?" in p for p in paths)
