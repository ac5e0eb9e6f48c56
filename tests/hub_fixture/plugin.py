"""pytest fixtures for the loopback hub: `fixture_hub` (session) and `hub_online` (one test).

Register with `pytest_plugins = ["hub_fixture.plugin"]` in tests/conftest.py, or import the
fixtures into a test module. A session builds the repos once (about 750 MB in a temp folder,
20-40 s) and serves them until it ends.

    def test_x(hub_online):            # env pointed at the hub, a session-wide hub cache
        model = ts.load_model("auto")  # gelu-1l from 127.0.0.1

    with fixture_hub.environment(cache_dir):  # the same, for a block (e.g. papermill runs:
        ...                                    # the kernel inherits os.environ)
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub_fixture.repos import build_repos
from hub_fixture.server import FixtureHub

# (module, attribute, value kind) read at import time by the hub libraries: patched as well as
# the environment, because those modules are usually imported before a fixture runs.
_ENDPOINT_ATTRS = (
    ("huggingface_hub.constants", "ENDPOINT", "endpoint"),
    ("huggingface_hub.constants", "HUGGINGFACE_CO_URL_TEMPLATE", "template"),
    ("huggingface_hub.constants", "HF_HUB_CACHE", "hub_cache"),
    ("huggingface_hub.constants", "HF_HUB_OFFLINE", "false"),
    ("huggingface_hub.constants", "AGENT_HARNESSES_PATH", "harnesses"),
    ("datasets.config", "HF_ENDPOINT", "endpoint"),
    ("datasets.config", "HUB_DATASETS_URL", "datasets_template"),
    ("datasets.config", "HF_HUB_OFFLINE", "false"),
    ("datasets.config", "HF_DATASETS_CACHE", "datasets_cache"),
    ("datasets.config", "DOWNLOADED_DATASETS_PATH", "downloaded"),
    ("datasets.config", "EXTRACTED_DATASETS_PATH", "extracted"),
)


class HubFixture:
    """The running fixture hub and how to point the hub libraries and the package at it."""

    def __init__(self, hub: FixtureHub, root: Path):
        self.hub, self.root = hub, root
        self.shared_cache = root / "shared-cache"

    @property
    def url(self) -> str:
        return self.hub.url

    @staticmethod
    def texts(n: int) -> list[str]:
        """The first `n` documents of the served c4-code-20k rows."""
        from hub_fixture.repos import stdlib_documents

        return stdlib_documents(n)

    def env(self, cache: Path | None = None, endpoint: str | None = None) -> dict[str, str]:
        """Environment variables a fresh process (a papermill kernel) needs to use this hub
        (or `endpoint` instead, e.g. a refusing or hanging one)."""
        cache = Path(cache or self.shared_cache)
        return {
            "HF_ENDPOINT": endpoint or self.url,
            "HF_HOME": str(cache / "hf"),
            "HF_HUB_CACHE": str(cache / "hf" / "hub"),
            "HF_DATASETS_CACHE": str(cache / "hf" / "datasets"),
            "TUTORIAL_SAE_CACHE": str(self._package_cache(cache)),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        }

    def _package_cache(self, cache: Path) -> Path:
        """A package cache of its own (token batches), reading the real offline corpus if built."""
        from tutorial_sae.data import corpus
        from tutorial_sae.paths import cache_root

        folder = cache / "tutorial_sae"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"corpus-v{corpus.CORPUS_VERSION}"
        real = cache_root() / name
        if real.is_dir() and not (folder / name).exists():
            (folder / name).symlink_to(real, target_is_directory=True)
        return folder

    @contextmanager
    def environment(self, cache: Path | None = None, mode: str = "ok", endpoint: str | None = None):
        """Point everything at the hub for a block, with `cache` (default: the session's);
        restore the environment, module settings and the package's "auto" state afterwards."""
        import huggingface_hub

        try:
            with pytest.MonkeyPatch.context() as patch:
                self.activate(patch, cache, mode, endpoint)
                yield self
        finally:
            huggingface_hub.HfFileSystem.clear_instance_cache()

    def activate(
        self,
        patch: pytest.MonkeyPatch,
        cache: Path | None = None,
        mode: str = "ok",
        endpoint: str | None = None,
    ):
        """`environment` with a caller's MonkeyPatch (undone when it is)."""
        import huggingface_hub
        from huggingface_hub import constants

        from tutorial_sae.data import hub as package_hub
        from tutorial_sae.models import loading

        env = self.env(cache, endpoint)
        url = env["HF_ENDPOINT"]
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        datasets_cache = Path(env["HF_DATASETS_CACHE"])
        values = {
            "endpoint": url,
            "template": url + "/{repo_id}/resolve/{revision}/{filename}",
            "datasets_template": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "hub_cache": env["HF_HUB_CACHE"],
            "harnesses": str(Path(env["HF_HOME"]) / ".agent_harnesses.json"),
            "false": False,
            "datasets_cache": datasets_cache,
            "downloaded": datasets_cache / "downloads",
            "extracted": datasets_cache / "downloads" / "extracted",
        }
        for module, name, kind in _ENDPOINT_ATTRS:
            if module == "huggingface_hub.constants" or module in sys.modules:
                patch.setattr(sys.modules.get(module) or constants, name, values[kind])
        # HfFileSystem instances remember their endpoint: start and end with none cached.
        huggingface_hub.HfFileSystem.clear_instance_cache()
        patch.setattr(loading, "_auto_choice", None)
        patch.setattr(loading, "_auto_gave_gelu", False)
        patch.setattr(loading, "_announced", None)
        patch.setattr(package_hub, "_last_success", 0.0)
        patch.setattr(self.hub, "mode", mode)


_shared: dict = {"hub": None, "users": 0}


@pytest.fixture(scope="session")
def fixture_hub(tmp_path_factory):
    """The loopback hub serving gelu-1l, its tokenizer, Nanda's SAEs and c4-code-20k.

    Built once per process even when several test modules import this fixture (each import is
    a fixture definition of its own), stopped when the last of them is finalised.
    """
    if _shared["hub"] is None:
        root = tmp_path_factory.mktemp("fixture_hub")
        _shared["hub"] = HubFixture(FixtureHub(build_repos(root / "repos")).start(), root)
    _shared["users"] += 1
    try:
        yield _shared["hub"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["hub"].hub.stop()
            _shared["hub"] = None


@pytest.fixture
def hub_online(fixture_hub, monkeypatch):
    """For one test: the environment points at the fixture hub (answering normally), with the
    session's shared hub cache, and the package's "auto" decision forgotten."""
    import huggingface_hub

    fixture_hub.activate(monkeypatch)
    yield fixture_hub
    huggingface_hub.HfFileSystem.clear_instance_cache()
