"""Fixtures shared by several test modules."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Under `pytest -n 2` (pyproject's addopts) each worker process, and every kernel or subprocess
# it starts, computes on one core: two workers with two threads each would stall each other on
# a 2-core machine. Set before torch is imported, so its thread pool starts at that size.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Toy-sized matmuls lose more to thread hand-offs than they gain from a second core,
    and on a loaded machine two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    """The shipped mini tokenizer (modules that train a tokenizer of their own override it)."""
    from tutorial_sae.models.mini import make_tokenizer
    from tutorial_sae.paths import assets_dir

    return make_tokenizer(assets_dir() / "tokenizer.json")


# Property-based tests: a fixed, bounded run in `make test`; HYPOTHESIS_PROFILE=long by hand.
def _hypothesis_profiles() -> None:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        max_examples=60,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile("long", max_examples=3000, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()


# Every notebook in the book runs once per test session (FAST=True, papermill): the chapter
# tests read its outputs and the book test builds the site from the same executed copies, so
# no chapter executes twice. `make book` still executes every chapter at its defaults.
ROOT = Path(__file__).resolve().parent.parent


class ExecutedNotebooks:
    """notebook path -> its executed copy (FAST=True), run on first request and kept."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._done: dict[Path, Path | BaseException] = {}

    def __call__(self, notebook: Path) -> Path:
        notebook = notebook.resolve()
        if notebook not in self._done:
            self._done[notebook] = self._run(notebook)
        result = self._done[notebook]
        if isinstance(result, BaseException):
            raise AssertionError(f"{notebook.name} failed to execute (FAST=True)") from result
        return result

    def _run(self, notebook: Path) -> Path | BaseException:
        import papermill

        before = sorted(p.name for p in notebook.parent.iterdir())
        out = self.out_dir / notebook.name
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters={"FAST": True},
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=600,
            )
        except Exception as error:  # kept, so every test that needs it reports the same failure
            return error
        after = sorted(p.name for p in notebook.parent.iterdir())
        if after != before:
            return AssertionError(f"{notebook.name} wrote files into {notebook.parent}")
        return out


@pytest.fixture(scope="session")
def executed_fast(tmp_path_factory) -> ExecutedNotebooks:
    return ExecutedNotebooks(tmp_path_factory.mktemp("executed"))


def toc_pages() -> list[str]:
    """Every page of _toc.yml (paths without suffix), in reading order."""
    import yaml

    def files(entry) -> list[str]:
        if not isinstance(entry, dict):
            return []
        found = [entry["file"]] if "file" in entry else []
        for value in entry.values():
            if isinstance(value, list):
                found += [f for item in value for f in files(item)]
        return found

    return files(yaml.safe_load((ROOT / "_toc.yml").read_text()))


def _source_files() -> list[str]:
    """The files a fresh clone has: tracked plus untracked-but-not-ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, executed_fast) -> Path:
    """The whole book built with -W from the session's executed notebooks; its html folder."""
    import nbformat
    import yaml

    src = tmp_path_factory.mktemp("book_src")
    for name in _source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    if (ROOT / ".cache").is_dir():  # the vendored MathJax, when `make book` fetched it
        (src / ".cache").symlink_to(ROOT / ".cache")
    for page in toc_pages():
        if (ROOT / f"{page}.ipynb").is_file():
            nb = nbformat.read(executed_fast(ROOT / f"{page}.ipynb"), as_version=4)
            nb.cells = [
                c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])
            ]
            nbformat.write(nb, src / f"{page}.ipynb")
    config = yaml.safe_load((src / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(src), "-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return src / "_build" / "html"


# Work shared within a session stays on one pytest-xdist worker: the executed notebooks and the
# built book (a few minutes), the loopback hub (~750 MB generated, six chapters run against it),
# and each module's module-scoped fixtures. Files are the unit: these groups join several files
# that share a session fixture; every other file is a group of its own. (pytest-xdist's own
# `xdist_group` marks do not group under pytest 9.2, whose node ids no longer read the field
# that xdist rewrites, so the scheduler is given the groups directly.)
SHARED_WORK = {
    "book": ("test_book.py", "test_notebooks.py", "test_page_layout.py"),
    "hub": ("test_chapters_online.py", "test_fixture_hub.py", "test_hub_failures.py"),
}
_GROUP_OF_FILE = {name: group for group, names in SHARED_WORK.items() for name in names}
_FIXTURES_OF_GROUP = {"book": {"executed_fast", "built_book"}, "hub": {"fixture_hub"}}


def work_group(nodeid: str) -> str:
    """The group a test runs in: its file's shared-work group, else its file."""
    path = nodeid.split("::")[0]
    return _GROUP_OF_FILE.get(Path(path).name, path)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's default scheduler
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkScheduling(LoadScopeScheduling):
        """Whole groups to a worker, biggest first: the groups come in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return work_group(nodeid)

    return SharedWorkScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """A test that uses a shared session fixture must sit in that fixture's group, or a second
    worker would build it again (minutes): say so at collection instead."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for group, fixtures in _FIXTURES_OF_GROUP.items():
            if used & fixtures and work_group(item.nodeid) != group:
                raise pytest.UsageError(
                    f"{item.nodeid} uses {sorted(used & fixtures)}: add its file to "
                    f"SHARED_WORK[{group!r}] in tests/conftest.py"
                )
