"""On Colab each chapter installs the package version that built its page, and the rocket button
opens that chapter at the same release (issue 13, item 5). pyproject.toml's version is the truth;
scripts/pin_install_cell.py writes it into the notebooks and _config.yml."""

import importlib.util
import json
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def _pin_module():
    spec = importlib.util.spec_from_file_location(
        "pin_install_cell", ROOT / "scripts" / "pin_install_cell.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pin = _pin_module()
NOTEBOOKS = pin.notebooks(ROOT)


def _first_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_every_notebook_page_and_student_copy_is_covered():
    pages = [
        entry["file"] for entry in TOC["chapters"] if (ROOT / f"{entry['file']}.ipynb").is_file()
    ]
    covered = {path.relative_to(ROOT).with_suffix("").as_posix() for path in NOTEBOOKS}
    assert set(pages) <= covered and len(pages) == 9
    assert {f"book/student/{Path(p).name}" for p in pages if Path(p).name[:2].isdigit()} <= covered


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_install_line_pins_pyprojects_version(path):
    lines = [line.strip() for line in _first_code(path).splitlines() if "%pip install" in line]
    url = CONFIG["repository"]["url"]
    assert lines == [f'%pip install -q "git+{url}@v{VERSION}"'], (
        f"{path.name} installs {lines}, not v{VERSION}: run python scripts/pin_install_cell.py"
    )


def test_package_reports_the_same_version():
    import tutorial_sae

    assert tutorial_sae.__version__ == VERSION


def test_rocket_button_opens_the_chapter_at_the_release():
    """sphinx-book-theme's Colab link is <colab_url>/github/<owner>/<repo>/blob/<branch>/
    <path_to_book>/<page>.ipynb: it must name the same tag as the install line, and a file
    that exists in the repository."""
    repo, launch = CONFIG["repository"], CONFIG["launch_buttons"]
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert repo["url"].startswith("https://github.com/") and repo["url"].count("/") == 4
    assert repo["branch"] == f"v{VERSION}", "run python scripts/pin_install_cell.py"
    assert repo["path_to_book"] == "", "the book is the repository root"
    for entry in TOC["chapters"]:
        notebook = ROOT / repo["path_to_book"] / f"{entry['file']}.ipynb"
        assert notebook.is_file(), f"the rocket button of {entry['file']} would open {notebook}"


def test_pin_script_rewrites_once_and_adds_a_missing_install(tmp_path):
    for name in ("pyproject.toml", "_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()
    chapters = [entry["file"] for entry in TOC["chapters"]]
    for page in chapters:
        if (ROOT / f"{page}.ipynb").is_file():
            shutil.copy(ROOT / f"{page}.ipynb", tmp_path / f"{page}.ipynb")
    first = tmp_path / f"{chapters[0]}.ipynb"
    nb = json.loads(first.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = ["import tutorial_sae as ts"]  # no install line at all
    first.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    other = tmp_path / f"{chapters[1]}.ipynb"
    other.write_text(other.read_text(encoding="utf-8").replace(f"@v{VERSION}", "@main"))

    assert pin.main(["--root", str(tmp_path)]) == 0
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert pin.main(["--root", str(tmp_path)]) == 0  # idempotent
    assert snapshot == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert pin.main(["--root", str(tmp_path), "--check"]) == 0
    for path in (first, other):
        assert f'tutorial_sae@v{VERSION}"' in _first_code(path)
    assert _first_code(first).endswith("import tutorial_sae as ts")
    assert f"branch: v{VERSION}" in (tmp_path / "_config.yml").read_text()


def test_pin_script_check_mode_reports_and_changes_nothing(tmp_path, capsys):
    for name in ("pyproject.toml", "_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text().replace(f'version = "{VERSION}"', 'version = "9.9.9"')
    )
    (tmp_path / "book").mkdir()
    page = TOC["chapters"][0]["file"]
    shutil.copy(ROOT / f"{page}.ipynb", tmp_path / f"{page}.ipynb")
    before = (tmp_path / f"{page}.ipynb").read_bytes()
    assert pin.main(["--root", str(tmp_path), "--check"]) == 1
    assert "not pinned to v9.9.9" in capsys.readouterr().out
    assert (tmp_path / f"{page}.ipynb").read_bytes() == before


def test_pin_script_refuses_two_install_lines(tmp_path):
    for name in ("pyproject.toml", "_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()
    page = TOC["chapters"][0]["file"]
    nb = json.loads((ROOT / f"{page}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    line = f'%pip install -q "git+{CONFIG["repository"]["url"]}@main"\n'
    cell["source"] = [line, line]
    (tmp_path / f"{page}.ipynb").write_text(json.dumps(nb))
    assert pin.main(["--root", str(tmp_path)]) == 2
