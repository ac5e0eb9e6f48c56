"""The static widget: self-contained HTML (no network) with one frame per value; the live
widget shows the same frames and displays the static copy first (chapters 3 and 7)."""

import base64
import re

import matplotlib.pyplot as plt
import pytest

from tutorial_sae.plots import static_widget as sw


def draw(value):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, value])
    ax.set(title=f"value {value}", xlabel="x", ylabel="y")
    return fig


def frames_of(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_html_has_a_range_input_and_one_frame_per_value_with_only_the_initial_shown():
    widget = sw.static_widget(draw, [1.0, 2.0, 3.0], "step size", "step-size", initial=1)
    html = widget.to_html()
    assert re.search(r'<input type="range" min="0" max="2" step="1" value="1"', html)
    assert frames_of(html) == list(widget.frames)
    assert len(set(widget.frames)) == 3
    imgs = re.findall(r"<img [^>]*>", html)
    assert [" hidden " in img for img in imgs] == [True, False, True]
    assert 'data-name="step-size"' in html and 'data-frame="1"' in html
    assert '["1", "2", "3"]' in html
    assert "http" not in html and "<link" not in html and 'src="//' not in html
    assert widget._repr_html_().startswith('<div class="tsw"')


def test_each_render_gets_its_own_element_id():
    widget = sw.static_widget(draw, [1.0, 2.0], "s", "s")
    ids = {re.search(r'id="([^"]+)"', widget.to_html()).group(1) for _ in range(3)}
    assert len(ids) == 3


def test_bad_widgets_say_what_was_expected():
    png = sw.figure_png(draw(1.0))
    with pytest.raises(ValueError, match="one label per frame"):
        sw.StaticWidget("a", "a", ("1", "2"), (png,))
    with pytest.raises(ValueError, match="PNG"):
        sw.StaticWidget("a", "a", ("1",), (b"GIF89a",))
    with pytest.raises(ValueError, match="initial"):
        sw.StaticWidget("a", "a", ("1",), (png,), initial=1)
    with pytest.raises(ValueError, match="name"):
        sw.StaticWidget("Bad Name", "a", ("1",), (png,))
    with pytest.raises(ValueError, match="at least one value"):
        sw.static_widget(draw, [], "a", "a")
    with pytest.raises(ValueError, match="initial"):
        sw.frame_slider(draw, [1.0], "a", "a", initial=3)


def test_live_slider_shows_the_frame_of_the_chosen_value_and_draws_each_once(monkeypatch):
    drawn = []

    def recording(value):
        drawn.append(value)
        return draw(value)

    box = sw.frame_slider(recording, [1.0, 2.0, 3.0], "s", "s", initial=0)
    slider, image = box.children
    slider.value = 3.0
    slider.value = 1.0
    assert drawn == [1.0, 3.0]
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    box._ipython_display_()
    assert drawn == [1.0, 3.0, 2.0]
    static_html, live = shown
    assert len(frames_of(static_html.data)) == 3 and frames_of(static_html.data)[0] == image.value
    assert "application/vnd.jupyter.widget-view+json" in live


def test_l1_widget_shows_one_static_frame_per_sweep_point(monkeypatch):
    from test_training_plots import fake_sweep

    from tutorial_sae.plots.training import l1_widget

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    l1_widget(fake_sweep())._ipython_display_()
    html = shown[0].data
    assert len(frames_of(html)) == 5
    assert 'data-name="l1-coeff"' in html and 'value="1"' in html
