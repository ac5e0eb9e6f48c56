"""The static widgets work in a real browser without a kernel: headless Chromium opens a page,
the slider is moved (by the widget's own `#name=index` URL handler, which sets the range input
and fires its `input` event) and the figure shown changes. Needs Chromium:
scripts/install_chromium.sh installs it (make test runs it first)."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from tutorial_sae.plots.static_widget import static_widget

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(
        "Chromium is not installed, so the widgets cannot be tested in a browser: run "
        "scripts/install_chromium.sh (as root, or with sudo) and rerun"
    )


class Widgets(HTMLParser):
    """Each static widget of a page: its name, data-frame and the src of the frame shown."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "tsw" in (attrs.get("class") or "").split():
            self._current = attrs["data-name"]
            self.found[self._current] = {"frame": attrs["data-frame"], "shown": []}
        elif tag == "img" and "tsw-frame" in (attrs.get("class") or "") and self._current:
            if "hidden" not in attrs:
                self.found[self._current]["shown"].append(attrs["src"])


def open_page(url: str) -> dict[str, dict]:
    dom = subprocess.run(
        [chromium(), *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    parser = Widgets()
    parser.feed(dom)
    return parser.found


def screenshot(url: str, path: Path) -> bytes:
    subprocess.run(
        [chromium(), *FLAGS, "--window-size=700,500", f"--screenshot={path}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return path.read_bytes()


def draw(value):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([0], [value])
    ax.set(title=f"value {value}", xlabel="x", ylabel="height", ylim=(0, 4))
    return fig


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    widget = static_widget(draw, [1.0, 2.0, 3.0], "step size", "step-size", initial=0)
    path = tmp_path_factory.mktemp("page") / "widget.html"
    path.write_text(f"<!doctype html><html><body>{widget.to_html()}</body></html>")
    return path


def test_moving_the_slider_changes_the_figure(page, tmp_path):
    before = open_page(page.as_uri())["step-size"]
    after = open_page(page.as_uri() + "#step-size=2")["step-size"]
    assert before["frame"] == "0" and after["frame"] == "2"
    assert len(before["shown"]) == len(after["shown"]) == 1
    assert before["shown"] != after["shown"]
    first = screenshot(page.as_uri(), tmp_path / "before.png")
    moved = screenshot(page.as_uri() + "#step-size=2", tmp_path / "after.png")
    assert first != moved
