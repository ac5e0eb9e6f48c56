"""Every page of the built book reads well in a browser at 1280 px and at 800 px (issue 13, item 4).

Headless Chromium (the system one: scripts/install_chromium.sh) is driven over the Chrome
DevTools protocol on a pipe (`--remote-debugging-pipe`: no port, no extra package). On each page,
with every collapsed solution opened and MathJax done, nothing may stick out of the text column
(`article.bd-article` less its padding):
- a code cell, an output block, a table or a display equation overflows when its box or its
  content (`left + scrollWidth`) reaches past the column's right edge, so a code block that
  scrolls sideways counts as overflowing;
- a figure image overflows when its box does;
- in a cell tagged `full-width` (the theme's layout for wide figures) the window is the limit;
- Chinese and Arabic text must be drawn with real glyphs: each character, drawn in its element's
  font, must differ from the "missing glyph" box drawn for a code point no font has.
With $BOOK_SCREENSHOTS set, a full-page screenshot of each page at each width is saved there for
a person to look at (about 10 s a page on a loaded 2-core machine, so not by default).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1280, 800)
TIMEOUT = 60.0

# Run in the page: open collapsed content, wait for MathJax and fonts.
SETTLE_JS = """(async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const maths = document.querySelector('div.math, span.math');
  return {mathjax: !maths || !!document.querySelector('mjx-container'),
          height: document.documentElement.scrollHeight};
})()"""

MEASURE_JS = r"""(() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const style = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft);
  const right = box.right - parseFloat(style.paddingRight);
  const where = el => {
    const section = el.closest('section[id]');
    const text = (el.innerText || el.alt || el.getAttribute('src') || '').trim();
    return (section ? '#' + section.id + ' ' : '') + text.slice(0, 60).replace(/\s+/g, ' ');
  };
  const kinds = [
    ['code', 'div.cell_input pre, div.highlight pre'],
    ['output', 'div.cell_output pre, div.cell_output div.output'],
    ['table', 'table'],
    ['equation', 'mjx-container[display="true"], div.math'],
    ['image', 'img'],
  ];
  const overflows = [];
  for (const [kind, selector] of kinds) {
    for (const el of article.querySelectorAll(selector)) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (kind === 'code' && el.closest('div.cell_output')) continue;
      if (kind === 'equation' && el.matches('div.math') && el.querySelector('mjx-container')) continue;
      // A cell tagged full-width may use the margin too, but not leave the window.
      const wide = el.closest('.tag_full-width, .full-width');
      const [lo, hi] = wide ? [0, document.documentElement.clientWidth] : [left, right];
      const reach = Math.max(r.right, r.left + el.scrollWidth);
      if (reach > hi + 1 || r.left < lo - 1) {
        overflows.push({kind, by: Math.round(reach - hi), where: where(el)});
      }
    }
  }
  // Real glyphs: a character drawn like an unassigned code point is a "missing glyph" box.
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font; ctx.textBaseline = 'top'; ctx.fillStyle = '#000';
    ctx.fillText(ch, 4, 4);
    return Array.from(ctx.getImageData(0, 0, 64, 64).data).join();
  };
  const script = /[\u3400-\u9fff\u0600-\u06ff]/g;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  const tofu = [];
  let glyphs = 0;
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.getClientRects().length === 0) continue;
    const s = getComputedStyle(parent);
    const font = `${s.fontStyle} ${s.fontWeight} 40px ${s.fontFamily}`;
    for (const ch of node.data.match(script) || []) {
      const key = ch + '|' + font;
      if (seen.has(key)) continue;
      seen.add(key);
      glyphs += 1;
      const image = draw(ch, font);
      if (image === draw('\u0378', font) || image === draw('\u0379', font)) {
        tofu.push({char: ch, font: s.fontFamily, where: where(parent)});
      }
    }
  }
  return {column: [Math.round(left), Math.round(right)], overflows, glyphs, tofu};
})()"""


TRAMPOLINE = """import os, sys
os.dup2(int(sys.argv[1]), 3)
os.dup2(int(sys.argv[2]), 4)
os.execv(sys.argv[3], sys.argv[3:])"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(
        "Chromium is not installed, so the page layout cannot be checked: run "
        "scripts/install_chromium.sh (as root, or with sudo) and rerun"
    )


class Browser:
    """Headless Chromium with one tab, spoken to over the DevTools protocol on fds 3 and 4."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # Above 4, so that the redirections below cannot overwrite one another.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        for fd in (to_browser, from_browser):
            os.close(fd)
        to_browser, from_browser = high
        # A tiny Python trampoline moves the browser's ends to fds 3 and 4, where
        # --remote-debugging-pipe expects them (no preexec_fn: this process may have threads).
        command = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(to_browser), str(from_browser), *command],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_browser, from_browser):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, seen in enumerate(self.events):
                if seen.get("method") == event:
                    del self.events[: i + 1]
                    return
            self.events.append(self._message(deadline))

    def evaluate(self, script: str):
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=script,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def resize(self, width: int) -> dict:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self.evaluate(SETTLE_JS)

    def open(self, url: str, width: int) -> dict:
        self.resize(width)
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        return self.evaluate(SETTLE_JS)

    def screenshot(self, path: Path, width: int, height: int) -> None:
        """The whole page, in pieces of at most 8,000 px (one huge capture can come back blank)."""
        for part, top in enumerate(range(0, max(height, 1), 8000)):
            shot = self.call(
                "Page.captureScreenshot",
                session=True,
                format="png",
                captureBeyondViewport=True,
                clip={
                    "x": 0,
                    "y": top,
                    "width": width,
                    "height": min(8000, height - top),
                    "scale": 1,
                },
            )
            name = path.with_name(f"{path.stem}-{part}.png") if height > 8000 else path
            name.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


def pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opened = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def layout(built_book, browser):
    """(page, width) -> what MEASURE_JS found there. Each page is loaded once, then resized.
    With $BOOK_SCREENSHOTS set, a full-page screenshot of each is saved there."""
    shots = os.environ.get("BOOK_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    found = {}
    for page in pages():
        path = Path(built_book) / f"{page}.html"
        assert path.is_file(), f"{path} was not built"
        for width in WIDTHS:
            if width == WIDTHS[0]:
                state = browser.open(path.as_uri(), width)
            else:
                state = browser.resize(width)
            found[page, width] = {**browser.evaluate(MEASURE_JS), **state}
            if shots:
                name = Path(shots) / f"{Path(page).name}-{width}.png"
                browser.screenshot(name, width, state["height"])
    return found


def report(problems: dict) -> str:
    return "\n".join(
        f"{page} at {width} px: "
        + (
            f"{item['kind']} {item['by']:+d} px"
            if "kind" in item
            else f"{item['char']!r} in {item['font']}"
        )
        + f" at {item['where']}"
        for (page, width), items in problems.items()
        for item in items
    )


@pytest.mark.book
@pytest.mark.parametrize("width", WIDTHS)
def test_no_code_table_equation_or_figure_overflows_its_column(layout, width):
    problems = {
        key: found["overflows"]
        for key, found in layout.items()
        if key[1] == width and found["overflows"]
    }
    assert not problems, "sticks out of the text column:\n" + report(problems)


@pytest.mark.book
def test_display_equations_are_typeset(layout):
    # Unrendered TeX cannot be measured; the build serves MathJax itself once vendored.
    missing = [page for (page, width), found in layout.items() if not found["mathjax"]]
    assert not missing, (
        f"MathJax did not load on {sorted(set(missing))}: run scripts/vendor_mathjax.py "
        "before building the book, so that equations render offline"
    )


@pytest.mark.book
def test_chinese_and_arabic_text_is_drawn_with_real_glyphs(layout):
    assert sum(found["glyphs"] for found in layout.values()) > 0, "no Chinese or Arabic text found"
    problems = {key: found["tofu"] for key, found in layout.items() if found["tofu"]}
    assert not problems, (
        "drawn as missing-glyph boxes (install a CJK font: scripts/install_chromium.sh):\n"
        + report(problems)
    )


def test_the_checks_catch_overflow_and_missing_glyphs(browser, tmp_path):
    """The rules can fail: a page with a long code line, a wide table, equation and image,
    and a character no font has, is flagged for each."""
    page = tmp_path / "bad.html"
    long_line = "x = " + "1 + " * 80
    page.write_text(
        '<!doctype html><html><body style="margin:0"><article class="bd-article" '
        'style="width:600px;padding:0 20px">'
        f'<div class="highlight"><pre style="overflow:auto">{long_line}</pre></div>'
        '<table><tr><td style="white-space:nowrap">' + "wide " * 60 + "</td></tr></table>"
        '<div class="math">' + "a+" * 200 + "</div>"
        '<img style="width:900px;height:10px" src="data:image/gif;base64,'
        'R0lGODlhAQABAAAAACw=">'
        "<p>\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0bff</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    browser.open(page.as_uri(), 800)
    found = browser.evaluate(MEASURE_JS.replace("[\\u3400-\\u9fff\\u0600-\\u06ff]", "[^ -~]"))
    assert sorted({o["kind"] for o in found["overflows"]}) == ["code", "equation", "image", "table"]
    assert "\u0bff" in {t["char"] for t in found["tofu"]}
