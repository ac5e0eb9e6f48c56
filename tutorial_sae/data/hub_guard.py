"""Bounded hub loads: capped timeouts, a failed-request limit, no side calls (chapters 3-8).

While a load runs inside `bounded_hub()`, every request the hub libraries make (huggingface_hub,
transformers, datasets and TransformerLens all share one HTTP client) has capped timeouts, at most
`MAX_FAILURES` failed requests are allowed before the package gives up (their own retry loops
sleep up to 23 s per file), and download counters and the datasets-server side calls are off.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import contextmanager

from tutorial_sae.errors import HubGaveUpError

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0  # between two chunks of a response, not for a whole download
MAX_FAILURES = 2  # failed requests (5xx, 408/429, dropped or refused connections) per load
# Hosts the hub libraries contact besides the hub and its file storage; never needed here.
EXTRA_HOSTS = ("datasets-server.", "s3.amazonaws.com")


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
