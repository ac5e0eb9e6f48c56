"""A stand-in for the Hugging Face Hub on 127.0.0.1, with switchable failure modes.

Two servers: the hub (api and resolve endpoints) and a "CDN" on another port that large (LFS)
files redirect to, as the real hub redirects them to another host: huggingface_hub reads a large
file's metadata from the redirect itself and follows it only to download. Every request is logged.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from hub_fixture.repos import GELU_1L_REPO, Repo

LFS_MIN_BYTES = 1_000_000
CHUNK = 1 << 20
# What the server does besides answering correctly. The probe (HEAD /api/models/<gelu-1l>) is
# answered normally in every "files_*" mode and in "drop_half" and "corrupt".
MODES = ("ok", "files_503", "files_500", "all_500", "all_404", "drop_half", "corrupt")


@dataclass(frozen=True)
class FileEntry:
    path: str
    disk: Path
    size: int
    git_oid: str  # sha1 of the git blob: the ETag of a small file
    sha256: str | None  # the ETag of a large (LFS) file

    @property
    def etag(self) -> str:
        return self.sha256 or self.git_oid


def _entry(path: str, disk: Path) -> FileEntry:
    """A file's hub metadata. A large file is stored in git as an LFS pointer: its git oid is the
    pointer's, its ETag the sha256 of its bytes (only that is hashed for it)."""
    size = disk.stat().st_size
    lfs = size >= LFS_MIN_BYTES or disk.suffix in {".pt", ".pth", ".parquet"}
    digest = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % size)
    with open(disk, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    if not lfs:
        return FileEntry(path, disk, size, digest.hexdigest(), None)
    sha256 = digest.hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    git_oid = hashlib.sha1(b"blob %d\0%s" % (len(pointer), pointer.encode())).hexdigest()
    return FileEntry(path, disk, size, git_oid, sha256)


class FixtureHub:
    """The hub and its CDN, serving `repos`; `mode` switches behaviours, `log` lists requests."""

    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        self.entries = {
            key: {p: _entry(p, d) for p, d in repo.files.items()} for key, repo in repos.items()
        }
        self.blobs = {e.sha256: e for files in self.entries.values() for e in files.values()}
        self.mode = "ok"
        self.log: list[tuple[str, str, str, int]] = []  # (server, method, path, status)
        self.unrouted: list[str] = []  # requests for endpoints the fixture does not serve
        self._lock = threading.Lock()
        self._servers: list[http.server.ThreadingHTTPServer] = []

    # life cycle
    def start(self) -> FixtureHub:
        for name in ("hub", "cdn"):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, name))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def record(self, server: str, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((server, method, path, status))

    def endpoints(self) -> list[str]:
        """The distinct endpoint shapes requested so far (repo names and revisions generalised)."""
        shapes = set()
        for server, method, path, status in list(self.log):
            shape = urlsplit(path).path
            for repo in self.repos.values():
                shape = shape.replace(repo.repo_id, "{repo}").replace(repo.sha, "{sha}")
            shape = re.sub(r"/resolve/[^/]+/.*", "/resolve/{rev}/{file}", shape)
            shape = re.sub(r"/(tree|paths-info)/[^/]+.*", r"/\1/{rev}/...", shape)
            shape = re.sub(r"/revision/[^/]+", "/revision/{rev}", shape)
            shape = re.sub(r"/_lfs/[0-9a-f]+", "/_lfs/{sha256}", shape)
            shapes.add(f"{server} {method} {shape} -> {status}")
        return sorted(shapes)


def _handler(hub: FixtureHub, server_name: str):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # the hub's own log replaces stderr lines
            pass

        def do_HEAD(self):
            self._serve(head=True)

        def do_GET(self):
            self._serve(head=False)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
            self._serve(head=False)

        # responses
        def _send(self, status, headers=None, body=b"", head=False):
            hub.record(server_name, self.command, self.path, status)
            self.send_response(status)
            headers = {"Content-Length": str(len(body)), **(headers or {})}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if not head and body:
                self.wfile.write(body)

        def _json(self, obj, head, headers=None):
            body = json.dumps(obj).encode()
            self._send(200, {"Content-Type": "application/json", **(headers or {})}, body, head)

        def _error(self, status, code, message, head, repo=None):
            headers = {"X-Error-Code": code, "X-Error-Message": message}
            if repo is not None:
                headers["X-Repo-Commit"] = repo.sha
            body = json.dumps({"error": message}).encode()
            self._send(status, {"Content-Type": "application/json", **headers}, body, head)

        def _serve(self, head):
            path = unquote(urlsplit(self.path).path)
            mode = hub.mode
            probe = self.command == "HEAD" and path == f"/api/models/{GELU_1L_REPO}"
            if mode == "all_500" or (mode in ("files_500",) and not probe):
                return self._error(500, "InternalError", "fixture hub: internal error", head)
            if mode == "all_404":
                return self._error(404, "RepoNotFound", "fixture hub: repository not found", head)
            if server_name == "cdn":
                return self._cdn(path, head)
            if path == "/api/agent-harnesses":  # huggingface_hub's agent registry (user agent)
                return self._json({"standardEnvVars": [], "harnesses": {}}, head)
            match = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(/.*)?", path)
            if match:
                return self._api(match.group(1), match.group(2), match.group(3) or "", head)
            match = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match:
                kind = "dataset" if match.group(1) else "model"
                return self._resolve(kind, match.group(2), match.group(3), match.group(4), head)
            hub.unrouted.append(f"{self.command} {self.path}")
            return self._error(404, "NotFound", f"fixture hub: no route for {path}", head)

        def _repo(self, kind, repo_id, head):
            repo = hub.repos.get(repo_id)
            if repo is None or repo.kind != kind:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head)
                return None
            return repo

        def _rev_ok(self, repo, rev, head):
            if rev in ("main", repo.sha):
                return True
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head, repo)
            return False

        def _tree_item(self, entry: FileEntry):
            item = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
            if entry.sha256:
                item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 132}
            return item

        def _api(self, plural, repo_id, rest, head):
            kind = plural[:-1]
            repo = self._repo(kind, repo_id, head)
            if repo is None:
                return
            files = hub.entries[repo_id]
            info_match = re.fullmatch(r"(?:/revision/([^/]+))?", rest)
            if info_match:
                if not self._rev_ok(repo, info_match.group(1) or "main", head):
                    return
                info = {
                    "_id": repo.sha[:24],
                    "id": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": repo.sha,
                    "private": False,
                    "gated": False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "lastModified": "2023-12-01T00:00:00.000Z",
                    "createdAt": "2023-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                }
                if kind == "model":
                    info["modelId"] = repo_id
                else:
                    info["cardData"] = {}
                return self._json(info, head)
            match = re.fullmatch(r"/(tree|paths-info)/([^/]+)(?:/(.*))?", rest)
            if not match or not self._rev_ok(repo, match.group(2), head):
                if not match:
                    hub.unrouted.append(f"{self.command} {self.path}")
                    self._error(404, "NotFound", f"fixture hub: no route for {rest}", head)
                return
            if match.group(1) == "paths-info":
                wanted = parse_qs(getattr(self, "_body", b"").decode()).get("paths", [])
                try:
                    wanted = json.loads(self._body).get("paths", wanted)
                except (ValueError, AttributeError):
                    pass
                return self._json(self._listing(files, wanted, prefixes=False), head)
            query = parse_qs(urlsplit(self.path).query)
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            base = (match.group(3) or "").strip("/")
            items = self._listing(files, None, base=base, recursive=recursive)
            if base and not items:
                return self._error(404, "EntryNotFound", f"{base} does not exist", head, repo)
            return self._json(items, head)

        def _listing(self, files, wanted, prefixes=True, base="", recursive=True):
            items, dirs = [], set()
            for path in sorted(files):
                if wanted is not None:
                    if path in wanted:
                        items.append(self._tree_item(files[path]))
                    dirs.update(d for d in wanted if path.startswith(d.rstrip("/") + "/"))
                    continue
                if base and not path.startswith(base + "/"):
                    continue
                rel = path[len(base) + 1 :] if base else path
                parts = rel.split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(([base] if base else []) + parts[:depth])
                    if recursive or depth == 1:
                        dirs.add(folder)
                if recursive or len(parts) == 1:
                    items.append(self._tree_item(files[path]))
            oid = "0" * 40
            return [{"type": "directory", "oid": oid, "path": d} for d in sorted(dirs)] + items

        def _resolve(self, kind, repo_id, rev, filename, head):
            repo = self._repo(kind, repo_id, head)
            if repo is None or not self._rev_ok(repo, rev, head):
                return
            if hub.mode == "files_503":
                return self._error(503, "ServiceUnavailable", "fixture hub: try later", head)
            entry = hub.entries[repo_id].get(filename)
            if entry is None:
                return self._error(404, "EntryNotFound", f"{filename} not found", head, repo)
            common = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
            if entry.sha256:
                where = f"{hub.cdn_url}/_lfs/{entry.sha256}"
                headers = {
                    **common,
                    "Location": where,
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                    "ETag": f'"{entry.git_oid}"',
                }
                return self._send(302, headers, b"", head)
            return self._file(entry, {**common, "ETag": f'"{entry.git_oid}"'}, head)

        def _cdn(self, path, head):
            match = re.fullmatch(r"/_lfs/([0-9a-f]{64})", path)
            entry = hub.blobs.get(match.group(1)) if match else None
            if entry is None:
                return self._error(404, "NotFound", f"fixture cdn: no blob at {path}", head)
            return self._file(entry, {"ETag": f'"{entry.sha256}"', "Accept-Ranges": "bytes"}, head)

        def _file(self, entry: FileEntry, headers, head):
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match and int(match.group(1)) < entry.size:
                start = int(match.group(1))
            status = 206 if start else 200
            length = entry.size - start
            headers = {**headers, "Content-Length": str(length)}
            if start:
                headers["Content-Range"] = f"bytes {start}-{entry.size - 1}/{entry.size}"
            hub.record(server_name, self.command, self.path, status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            stop = entry.size if hub.mode != "drop_half" else start + max(1, length // 2)
            with open(entry.disk, "rb") as handle:
                handle.seek(start)
                position = start
                while position < stop:
                    block = handle.read(min(CHUNK, stop - position))
                    if not block:
                        break
                    if hub.mode == "corrupt" and position == 0:
                        # Same length, wrong bytes: a torch zip, parquet or JSON that cannot be read.
                        block = bytes(b ^ 0xFF for b in block[:64]) + block[64:]
                    try:
                        self.wfile.write(block)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    position += len(block)
            if hub.mode == "drop_half":
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

    return Handler


@contextmanager
def refusing_endpoint():
    """A loopback URL where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextmanager
def hanging_endpoint():
    """A loopback URL that accepts connections and never answers (a hub that hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
