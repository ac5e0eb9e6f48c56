"""The hub, politely: a short reachability probe, offline mode, bounded downloads (chapters 3-8).

Nothing here ever waits on a dead network for more than `PROBE_TIMEOUT_S`: without it the hub
libraries retry for about 23 s before failing. While a load runs inside `bounded_hub()`, every
request the hub libraries make (huggingface_hub, transformers, datasets and TransformerLens all
share one HTTP client) has capped timeouts, at most `MAX_FAILURES` failed requests are allowed
before the package gives up (their own retry loops sleep up to 23 s per file), and download
counters and the datasets-server side calls are off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tutorial_sae.errors import HubGaveUpError, HubUnavailableError

GELU_1L_REPO = "NeelNanda/GELU_1L512W_C4_Code"

PROBE_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0  # between two chunks of a response, not for a whole download
MAX_FAILURES = 2  # failed requests (5xx, 408/429, dropped or refused connections) per load
# Hosts the hub libraries contact besides the hub and its file storage; never needed here.
EXTRA_HOSTS = ("datasets-server.", "s3.amazonaws.com")


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


class _Guard:
    """The failed requests of one bounded load; the `MAX_FAILURES`-th one ends it."""

    def __init__(self, what: str, max_failures: int):
        self.what, self.max_failures = what, max_failures
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def fail(self, request, why: str, cause: BaseException | None = None) -> None:
        """Record a failure; raise HubGaveUpError (retried by no library) once there are enough."""
        with self.lock:
            self.failures.append(f"{request.method} {request.url.path} -> {why}")
            if len(self.failures) >= self.max_failures:
                raise HubGaveUpError(self.summary()) from cause

    def check(self) -> None:
        if len(self.failures) >= self.max_failures:
            raise HubGaveUpError(self.summary())

    def summary(self) -> str:
        return (
            f"gave up after {len(self.failures)} failed hub requests, the last {self.failures[-1]}"
        )


_guard: _Guard | None = None
_installed_factory = None


def _transport_classes():
    """The guarded transport and body stream, built on the hub library's HTTP client package."""
    from huggingface_hub.utils import httpx

    class GuardedStream(httpx.SyncByteStream):
        def __init__(self, inner, guard: _Guard, request):
            self.inner, self.guard, self.request = inner, guard, request

        def __iter__(self):
            try:
                yield from self.inner
            except httpx.TransportError as err:  # a download dropped half way
                self.guard.fail(self.request, f"{type(err).__name__}: {err}", err)
                raise

        def close(self):
            self.inner.close()

    class GuardedTransport(httpx.BaseTransport):
        def __init__(self):
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            guard = _guard
            if guard is None:
                return self.inner.handle_request(request)
            host = request.url.host or ""
            if host.startswith(EXTRA_HOSTS[0]) or host == EXTRA_HOSTS[1]:
                raise HubGaveUpError(f"{host} is not needed and not contacted ({request.url})")
            guard.check()
            asked = request.extensions.get("timeout") or {}
            caps = {"connect": CONNECT_TIMEOUT_S, "pool": CONNECT_TIMEOUT_S}
            request.extensions["timeout"] = {
                key: min(asked.get(key) or cap, cap)
                for key, cap in {**caps, "read": READ_TIMEOUT_S, "write": READ_TIMEOUT_S}.items()
            }
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as err:
                guard.fail(request, f"{type(err).__name__}: {err}", err)
                raise
            if response.status_code >= 500 or response.status_code in (408, 429):
                try:
                    guard.fail(request, f"HTTP {response.status_code}")
                except HubGaveUpError:
                    response.close()
                    raise
            response.stream = GuardedStream(response.stream, guard, request)
            return response

        def close(self):
            self.inner.close()

    return GuardedTransport


def _install_guarded_client() -> None:
    """Make the hub libraries' shared HTTP client pass through the guard (once per process)."""
    global _installed_factory
    from huggingface_hub import get_session, set_client_factory
    from huggingface_hub.utils import httpx

    if _installed_factory is not None:
        return
    hooks = get_session().event_hooks
    transport = _transport_classes()

    def factory():
        return httpx.Client(
            event_hooks=hooks, follow_redirects=True, timeout=None, transport=transport()
        )

    set_client_factory(factory)
    _installed_factory = factory


# Module attributes the libraries read at call time: download counters, the datasets-server
# parquet export and telemetry, all off while a bounded load runs.
_QUIET = (
    ("huggingface_hub.constants", "HF_HUB_DISABLE_TELEMETRY", True),
    ("datasets.config", "HF_UPDATE_DOWNLOAD_COUNTS", False),
    ("datasets.config", "USE_PARQUET_EXPORT", False),
)


@contextmanager
def bounded_hub(what: str, max_failures: int = MAX_FAILURES):
    """Run a hub load with capped timeouts, at most `max_failures` failed requests and no side
    calls; HubGaveUpError (a HubUnavailableError) says which requests failed and why."""
    global _guard
    _install_guarded_client()
    saved = []
    for module, name, value in _QUIET:
        if module in sys.modules:
            saved.append((sys.modules[module], name, getattr(sys.modules[module], name)))
            setattr(sys.modules[module], name, value)
    previous, _guard = _guard, _Guard(what, max_failures)
    # The libraries log each failure and retry as a warning; the caller reports one line.
    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield _guard
    finally:
        _guard = previous
        log.setLevel(level)
        for module, name, value in saved:
            setattr(module, name, value)


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
