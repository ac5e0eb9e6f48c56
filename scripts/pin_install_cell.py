"""Pin the Colab install line of every chapter, and the launch buttons, to the package's version.

    python scripts/pin_install_cell.py          # rewrite what is not pinned yet
    python scripts/pin_install_cell.py --check  # only report; exit 1 if anything is not pinned

The version in pyproject.toml is the truth; its release tag is `v<version>`. The first code cell
of each notebook page of the book (and of each student copy in book/student/) installs the
package from that tag:

    %pip install -q "git+<repository url>@v<version>"

(a first code cell without that line gets the chapters' guarded install block on top), and
`repository: branch:` in _config.yml names the same tag, so the rocket button opens the
chapter as it was at that release, with the package it was built with. Idempotent: a second run
changes nothing. Only those two lines are edited; the notebooks keep their JSON layout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALL = re.compile(r'^(?P<indent>\s*)%pip install -q "git\+(?P<url>[^"@]+)@(?P<ref>[^"]+)"$')
BRANCH = re.compile(r"^(?P<head>  branch:\s*)(?P<ref>\S+)(?P<tail>.*)$", re.MULTILINE)


def version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def release_ref(root: Path = ROOT) -> str:
    """The git tag of this version: v<version>."""
    return f"v{version(root)}"


def repository_url(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def notebooks(root: Path = ROOT) -> list[Path]:
    """The book's notebook pages in _toc.yml order, then their student copies."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [root / f"{entry['file']}.ipynb" for entry in toc["chapters"]]
    pages = [page for page in pages if page.is_file()]
    student = [root / "book" / "student" / page.name for page in pages]
    return pages + [page for page in student if page.is_file()]


def install_line(url: str, ref: str, indent: str = "    ") -> str:
    return f'{indent}%pip install -q "git+{url}@{ref}"'


def first_code_cell(notebook: dict) -> dict:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            return cell
    raise ValueError("the notebook has no code cell")


def install_block(url: str, ref: str) -> list[str]:
    """The chapters' guarded install, for a notebook whose first code cell has none."""
    return [
        "# On Colab: install this book's package when it is missing (torch is there).",
        "try:",
        "    import tutorial_sae",
        "except ImportError:",
        install_line(url, ref),
        "",
    ]


def pin_notebook(path: Path, url: str, ref: str, write: bool) -> bool:
    """Point the install line of `path`'s first code cell at `ref`; True if it changed.

    A first code cell without an install line gets the chapters' guarded install block on
    top. Raises ValueError when it has more than one install line.
    """
    text = path.read_text(encoding="utf-8")
    notebook = json.loads(text)
    cell = first_code_cell(notebook)
    lines = "".join(cell["source"]).split("\n")
    found = [i for i, line in enumerate(lines) if INSTALL.match(line)]
    if len(found) > 1:
        raise ValueError(
            f'{path}: expected one line `%pip install -q "git+<url>@<ref>"` in the first code '
            f"cell, found {len(found)}"
        )
    if not found:
        lines = install_block(url, ref) + lines
    else:
        match = INSTALL.match(lines[found[0]])
        wanted = install_line(url, ref, match["indent"])
        if lines[found[0]] == wanted:
            return False
        lines[found[0]] = wanted
    joined = "\n".join(lines)
    cell["source"] = joined.splitlines(keepends=True)
    if write:
        # The layout nbformat and Jupyter write: one-space indent, sorted keys, UTF-8 as is.
        out = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False)
        path.write_text(out + ("\n" if text.endswith("\n") else ""), encoding="utf-8")
    return True


def pin_config(path: Path, ref: str, write: bool) -> bool:
    """Set `repository: branch:` in _config.yml to `ref`, keeping comments; True if it changed."""
    text = path.read_text(encoding="utf-8")
    block = re.search(r"^repository:\n((?:[ #].*\n|\n)*)", text, re.MULTILINE)
    if block is None or not BRANCH.search(block.group(1)):
        raise ValueError(f"{path}: no `repository:` block with a `branch:` entry")
    start = block.start(1)
    body = BRANCH.sub(lambda m: f"{m['head']}{ref}{m['tail']}", block.group(1), count=1)
    if body == block.group(1):
        return False
    if write:
        path.write_text(text[:start] + body + text[block.end(1) :], encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if not pinned")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: this one)"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    ref, url = release_ref(root), repository_url(root)
    changed = []
    try:
        # A dry run over everything first, so that a bad notebook stops the run before any write.
        for write in (False,) if args.check else (False, True):
            changed = [
                path.relative_to(root).as_posix()
                for path in notebooks(root)
                if pin_notebook(path, url, ref, write)
            ]
            if pin_config(root / "_config.yml", ref, write):
                changed.append("_config.yml")
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    verb = "not pinned to" if args.check else "pinned to"
    for name in changed:
        print(f"{name}: {verb} {ref}")
    if not changed:
        print(f"every install line and the launch branch already name {ref}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
