"""Sliders over precomputed figures that work in the built HTML book without a kernel (chapters 3, 7).

The built book has no kernel, so an ipywidgets slider there shows nothing. `StaticWidget`
renders every frame to a PNG, embeds them base64 in one HTML output and moves between them
with a client-side `<input type="range">`: no kernel, no network, no CDN. `frame_slider`
returns the live ipywidgets version (Jupyter, Colab), which displays the static one first:
in the book that is what the reader sees; in a live notebook the static copy hides itself
once the live widget has rendered beside it. A page URL ending `#<name>=<index>` opens the
static widget of that name at frame `index` (deep links; the browser test uses it).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

# Runs in the page: show the frame the slider points at; honour #name=index; hide this static
# copy when a live ipywidget renders in the same notebook cell.
SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s);
  if (!root) { return; }
  var input = root.querySelector("input[type=range]");
  var shown = root.querySelector("output");
  var frames = root.querySelectorAll("img.tsw-frame");
  var labels = %(labels)s;
  function show() {
    var i = Number(input.value);
    for (var k = 0; k < frames.length; k++) { frames[k].hidden = (k !== i); }
    shown.textContent = labels[i];
    root.setAttribute("data-frame", String(i));
  }
  input.addEventListener("input", show);
  var wanted = new RegExp("[#&]" + root.getAttribute("data-name") + "=(\\\\d+)").exec(location.hash);
  if (wanted) { input.value = wanted[1]; input.dispatchEvent(new Event("input")); }
  var cell = root.closest(".jp-Cell, .cell, .jp-OutputArea, .output_area") || document.body;
  var tries = 0;
  var timer = setInterval(function () {
    if (cell.querySelector(".jupyter-widgets, .widget-slider, .widget-hslider")) {
      root.style.display = "none";
      clearInterval(timer);
    } else if (++tries > 20) { clearInterval(timer); }
  }, 500);
})();
"""


def figure_png(fig: Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes (closed afterwards, so a loop of frames leaks no figures)."""
    if not hasattr(fig, "savefig"):
        raise ValueError(f"expected a matplotlib Figure (draw must return one), got {fig!r}"[:200])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


@dataclass(frozen=True)
class StaticWidget:
    """A slider named `name` over PNG `frames`, one per entry of `labels`, opening at `initial`."""

    name: str
    label: str
    labels: tuple[str, ...]
    frames: tuple[bytes, ...]
    initial: int = 0
    alt: str = "figure"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise ValueError(
                f"expected a name of lowercase letters, digits, - or _, got {self.name!r}"
            )
        if not self.frames or len(self.frames) != len(self.labels):
            raise ValueError(
                f"expected one label per frame and at least one frame, got {len(self.frames)} "
                f"frames and {len(self.labels)} labels"
            )
        bad = [i for i, f in enumerate(self.frames) if not bytes(f).startswith(PNG_MAGIC)]
        if bad:
            raise ValueError(f"expected PNG bytes for every frame, got something else at {bad}")
        if not 0 <= self.initial < len(self.frames):
            raise ValueError(f"expected 0 <= initial < {len(self.frames)}, got {self.initial}")

    def to_html(self) -> str:
        """One self-contained HTML fragment: range input, value, frames, and a script."""
        uid = f"tsw-{self.name}-{uuid.uuid4().hex[:8]}"
        images = "".join(
            f'<img class="tsw-frame" alt="{html.escape(self.alt)}, {html.escape(self.label)} = '
            f'{html.escape(lab)}" style="max-width:100%"{"" if i == self.initial else " hidden"} '
            f'src="data:image/png;base64,{base64.b64encode(frame).decode("ascii")}">'
            for i, (frame, lab) in enumerate(zip(self.frames, self.labels, strict=True))
        )
        script = SCRIPT % {"id": json.dumps(uid), "labels": json.dumps(list(self.labels))}
        return (
            f'<div class="tsw" id="{uid}" data-name="{self.name}" data-frame="{self.initial}">'
            f'<label style="font-family:sans-serif">{html.escape(self.label)} '
            f'<input type="range" min="0" max="{len(self.frames) - 1}" step="1" '
            f'value="{self.initial}" style="width:16em;vertical-align:middle"> '
            f"<output>{html.escape(self.labels[self.initial])}</output></label>"
            f"<div>{images}</div><script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def static_widget(
    draw: Callable[[object], Figure],
    values: Sequence,
    label: str,
    name: str,
    initial: int = 0,
    labels: Sequence[str] | None = None,
    dpi: int = 72,
) -> StaticWidget:
    """Render `draw(value)` for every value into a `StaticWidget` (labels default to f"{v:g}")."""
    if len(values) == 0:
        raise ValueError("expected at least one value to draw a frame for, got none")
    labels = [f"{v:g}" for v in values] if labels is None else list(labels)
    frames = tuple(figure_png(draw(v), dpi) for v in values)
    return StaticWidget(name, label, tuple(labels), frames, initial, alt=label)


def frame_slider(
    draw: Callable[[object], Figure],
    values: Sequence,
    label: str,
    name: str,
    initial: int = 0,
    labels: Sequence[str] | None = None,
    dpi: int = 72,
):
    """The live slider (an ipywidgets VBox of a SelectionSlider and an Image redrawn on each move).

    Displaying it shows the `static_widget` of the same frames first, for the built book.
    """
    import ipywidgets as widgets

    labels = [f"{v:g}" for v in values] if labels is None else list(labels)
    if len(values) == 0 or len(labels) != len(values) or not 0 <= initial < len(values):
        raise ValueError(
            f"expected values, one label each and 0 <= initial < {len(values)}, got "
            f"{len(values)} values, {len(labels)} labels, initial {initial}"
        )

    pngs: dict[int, bytes] = {}

    def png(i: int) -> bytes:
        # Each frame is drawn once, whichever of the two versions asks for it first.
        if i not in pngs:
            pngs[i] = figure_png(draw(values[i]), dpi)
        return pngs[i]

    class FrameSlider(widgets.VBox):
        def _ipython_display_(self) -> None:
            from IPython.display import HTML, display

            frames = tuple(png(i) for i in range(len(values)))
            static = StaticWidget(name, label, tuple(labels), frames, initial, alt=label)
            display(HTML(static.to_html()))
            display(self._repr_mimebundle_(), raw=True)

    slider = widgets.SelectionSlider(
        options=list(zip(labels, values, strict=True)),
        value=values[initial],
        description=label,
        continuous_update=False,
    )
    image = widgets.Image(value=png(initial), format="png")

    def redraw(change) -> None:
        image.value = png(list(values).index(change["new"]))

    slider.observe(redraw, names="value")
    return FrameSlider([slider, image])
