"""The whole book builds with warnings as errors, and the pages hold maths, figures and checks.

Slow (it builds the site from every executed chapter): marked `book` so it can be selected or
skipped with -m. The chapters run once per session (FAST, the `executed_fast` fixture); the
build reads their outputs instead of executing them again.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def html(built_book):
    """The site built from the session's executed chapters (tests/conftest.py)."""
    return built_book


def _pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [entry["file"] for entry in toc["chapters"]]


def _chapters():
    """The numbered chapters (book/NN_slug); the appendix has no exercises or figures."""
    return [page for page in _pages() if Path(page).name[:2].isdigit()]


@pytest.mark.book
def test_intro_and_every_chapter_page_exist(html):
    assert (html / "index.html").is_file()
    assert (html / "book" / "intro.html").is_file()
    for page in _pages():
        assert (html / f"{page}.html").is_file(), page


@pytest.mark.book
def test_chapter_pages_hold_maths_figures_and_passing_checks(html):
    for page in _chapters():
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        assert 'class="math notranslate nohighlight"' in text, f"{page}: no maths"
        images = re.findall(r'<img [^>]*src="([^"]+\.png)"', text)
        assert images, f"{page}: no figures"
        for src in images:
            assert (html / page).parent.joinpath(src).resolve().is_file(), src
        assert "✓" in text and "✗" not in text, f"{page}: a check failed"
        assert "tag_hide-input" in text, f"{page}: solutions are not collapsed"


@pytest.mark.book
def test_chapter_pages_have_a_colab_launch_button(html):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug = repo["url"].removeprefix("https://github.com/")
    for page in _chapters():
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        assert f"colab.research.google.com/github/{slug}/blob/{repo['branch']}/{page}.ipynb" in text


@pytest.mark.book
def test_student_notebooks_are_not_part_of_the_site(html):
    assert not (html / "book" / "student").exists()


@pytest.mark.book
def test_pages_load_mathjax_from_the_site_when_it_is_vendored(html):
    page = (html / "book" / "01_math.html").read_text(encoding="utf-8")
    if (ROOT / ".cache" / "mathjax" / "package" / "es5" / "tex-mml-chtml.js").is_file():
        assert 'src="../_static/mathjax/es5/tex-mml-chtml.js"' in page
        assert (html / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
        assert any((html / "_static" / "mathjax").rglob("*.woff"))
    else:
        assert "mathjax@3/es5/tex-mml-chtml.js" in page


@pytest.mark.book
def test_appendix_page_shows_the_provenance_and_model_tables(html):
    text = (html / "book" / "appendix_data.html").read_text(encoding="utf-8")
    for expected in ("fortunes", "bigram", "mini/run1", "NeelNanda/sparse_autoencoder"):
        assert expected in text
    assert "<table" in text


@pytest.mark.book
@pytest.mark.parametrize(
    ("page_name", "widget"),
    [("03_training.html", "l1-coeff"), ("07_random_walks.html", "step-size")],
)
def test_widgets_move_in_the_built_book(html, page_name, widget):
    from test_widgets_in_browser import open_page

    built = html / "book" / page_name
    assert built.is_file(), f"{built} was not built"
    before = open_page(built.as_uri())[widget]
    target = 0 if before["frame"] != "0" else 1
    after = open_page(built.as_uri() + f"#{widget}={target}")[widget]
    assert after["frame"] == str(target)
    assert len(after["shown"]) == 1 and after["shown"] != before["shown"]
