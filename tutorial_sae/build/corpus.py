"""Build the offline corpus: `python -m tutorial_sae.build.corpus build` (run by `make` and CI)."""

from __future__ import annotations

import argparse

from tutorial_sae.data.corpus import corpus_dir
from tutorial_sae.data.corpus_build import build_corpus
from tutorial_sae.plots.appendix import provenance_markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_sae.build.corpus", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the corpus (seconds if already built)")
    build.add_argument("--force", action="store_true", help="rebuild even if built")
    commands.add_parser("table", help="print the provenance table as markdown")
    commands.add_parser("path", help="print the corpus folder")
    args = parser.parse_args(argv)
    if args.command == "build":
        build_corpus(force=args.force)
    elif args.command == "table":
        print(provenance_markdown())
    else:
        print(corpus_dir())


if __name__ == "__main__":
    main()
