"""The hub, politely: a short reachability probe, offline mode, bounded downloads (chapters 3-8).

Nothing here ever waits on a dead network for more than `PROBE_TIMEOUT_S`: without it the hub
libraries retry for about 23 s before failing. Downloads run inside `bounded_hub()` (capped
timeouts, a failed-request limit, no side calls), which lives in `tutorial_sae.data.hub_guard`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# The request guard moved to hub_guard; re-exported so existing imports keep working.
from tutorial_sae.data.hub_guard import (  # noqa: F401
    CONNECT_TIMEOUT_S,
    EXTRA_HOSTS,
    MAX_FAILURES,
    READ_TIMEOUT_S,
    HubGaveUpError,
    bounded_hub,
)
from tutorial_sae.errors import HubUnavailableError

GELU_1L_REPO = "NeelNanda/GELU_1L512W_C4_Code"

PROBE_TIMEOUT_S = 3.0


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """True when offline mode is requested, read at call time so a notebook can set it late."""
    from huggingface_hub import constants

    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or constants.HF_HUB_OFFLINE


def go_offline() -> None:
    """Switch the hub libraries to offline mode for the rest of the session.

    Without it, every later hub call (TransformerLens, datasets) retries a dead network for
    about 23 s before failing; with it they fail, or read the local cache, at once.
    """
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def probe_hub(timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(reachable, why): one HEAD request to the hub's page for gelu-1l, abandoned after `timeout`.

    Reachable means an answer below HTTP 400: a hub that says gelu-1l is missing (404) or fails
    (5xx) cannot serve it either.

    The request runs in a daemon thread because a DNS lookup ignores socket timeouts; the caller
    never waits longer than `timeout`, whatever the network does.
    """
    url = f"{_endpoint()}/api/models/{GELU_1L_REPO}"
    result: dict[str, object] = {}

    def ask() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result["status"] = response.status
        except urllib.error.HTTPError as err:
            result["status"] = err.code
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            # The socket's own timeout can fire just before join() gives up: the same answer.
            result["timeout" if isinstance(reason, TimeoutError) else "error"] = reason

    start = time.perf_counter()
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout)
    elapsed = time.perf_counter() - start
    if "status" in result:
        status = int(result["status"])
        ok = status < 400
        return ok, f"the hub answered HTTP {status} in {elapsed:.1f} s"
    if "error" in result:
        return False, f"the hub is unreachable: {result['error']}"
    return False, f"the hub did not answer within {timeout:.0f} s"


_last_success = 0.0
TRUST_SUCCESS_S = 300.0


def use_network(timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(online, why): False in offline mode; otherwise probe the hub, and if it does not answer,
    switch offline mode on so this and every later call reads the local cache at once.

    A successful probe is trusted for `TRUST_SUCCESS_S` so loading several files asks once.
    """
    global _last_success
    if hub_offline():
        return False, "HF_HUB_OFFLINE is set"
    if time.monotonic() - _last_success < TRUST_SUCCESS_S:
        return True, "the hub answered recently"
    reachable, why = probe_hub(timeout)
    if reachable:
        _last_success = time.monotonic()
    else:
        go_offline()
    return reachable, why


def hub_cache_dir() -> str | None:
    """The hub cache from the environment at call time (the hub library reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _storage_folder(repo_id: str, kind: str, cache_dir: str | None) -> Path:
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE)
    return root / f"{kind}s--{repo_id.replace('/', '--')}"


def _blob_is_intact(path: Path) -> bool:
    """A blob named by its sha256 (large files) or git sha1 (small files) matches its bytes."""
    name, size = path.name, path.stat().st_size
    if len(name) == 64:
        digest = hashlib.sha256()
    elif len(name) == 40:
        digest = hashlib.sha1(b"blob %d\0" % size)
    else:
        return True  # not a name this check understands: leave it
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest() == name


def discard_bad_downloads(repo_id: str, kind: str = "model", cache_dir: str | None = None) -> list:
    """Remove a repo's partial downloads and blobs whose bytes do not match their name (a corrupt
    transfer), with the snapshot links to them; return the removed paths. Cheap when all is well
    except for hashing: call it after a failed load, not on every load."""
    folder = _storage_folder(repo_id, kind, cache_dir)
    removed = []
    for blob in sorted((folder / "blobs").glob("*")) if (folder / "blobs").is_dir() else []:
        if blob.name.endswith(".incomplete") or not _blob_is_intact(blob):
            blob.unlink(missing_ok=True)
            removed.append(blob)
    for link in (folder / "snapshots").rglob("*") if (folder / "snapshots").is_dir() else []:
        if link.is_symlink() and not link.exists():
            link.unlink()
            removed.append(link)
    return removed


def download_hub_file(repo_id: str, filename: str) -> Path:
    """Path of `filename` from the hub, or from the local cache when offline (no waiting)."""
    from huggingface_hub import hf_hub_download

    online, _ = use_network()
    offline = not online
    try:
        with bounded_hub(f"{repo_id} {filename}"):
            path = hf_hub_download(
                repo_id, filename, cache_dir=hub_cache_dir(), local_files_only=offline
            )
    except OSError as err:
        where = "the local hub cache (offline mode)" if offline else "the hub"
        discard_bad_downloads(repo_id, cache_dir=hub_cache_dir())
        raise HubUnavailableError(
            f"could not get {filename} of {repo_id} from {where}: {one_line(err)}"
        ) from err
    return Path(path)


def one_line(err: BaseException, limit: int = 400) -> str:
    """An exception as one line: the first line of its message, behind its type unless it is one
    of the package's hub errors (whose messages say what failed)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text if isinstance(err, HubUnavailableError) else f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
