"""Chapter 3's figures build from small fake logs and sweeps, with titles and labelled axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from tutorial_sae.analysis.sweeps import (
    DeadFeatureComparison,
    DensityHistogram,
    L1Sweep,
    MethodRun,
    SweepPoint,
)
from tutorial_sae.plots.training import (
    comparison_table,
    l1_widget,
    metrics_side_by_side,
    plot_dead_feature_comparison,
    plot_density_histogram,
    plot_l1_sweep,
    plot_training_log,
    sweep_table,
)
from tutorial_sae.training.trainer import TrainLog


def fake_log(ghost: bool = True) -> dict:
    steps = [10, 20, 30, 40]
    return {
        "step": steps,
        "mse": [5.0, 3.0, 2.0, 1.5],
        "l1": [2.0, 1.5, 1.2, 1.0],
        "ghost": [0.0, 0.0, 1.0, 0.5] if ghost else [0.0] * 4,
        "l0": [500.0, 100.0, 40.0, 30.0],
        "dead_fraction": [0.0, 0.0, 0.1, 0.2],
        "explained_variance": [0.2, 0.6, 0.7, 0.8],
        "resampled": [0, 0, 0, 0],
    }


def fake_sweep() -> L1Sweep:
    hist = DensityHistogram([-5.0, -4.0, -3.0, -2.0, -1.0, 0.0], [1, 5, 20, 10, 2], 3, 32_768)
    points = [
        SweepPoint(l1, 80 / l1, 0.2 * l1, 0.95 - 0.03 * l1, 0.97 - 0.02 * l1, 0.01 * l1, 0.0, hist)
        for l1 in (0.5, 1.0, 2.0, 4.0, 8.0)
    ]
    return L1Sweep(points, chosen=1.0, settings={})


def fake_comparison() -> DeadFeatureComparison:
    final = {
        "l0": 30.0,
        "explained_variance": 0.8,
        "ce_loss_recovered": 0.9,
        "dead_fraction": 0.1,
        "dense_fraction": 0.0,
        "mse": 1.0,
    }
    runs = {
        m: MethodRun(m, fake_log(m == "ghost"), final, 12.0) for m in ("none", "ghost", "resample")
    }
    return DeadFeatureComparison(runs, {"train_config": {"dead_window": 20}})


def assert_labelled(fig):
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_title(), "an axis has no title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"axis {ax.get_title()!r} lacks a label"
    plt.close(fig)


def test_training_log_figure_from_a_dict_and_from_a_train_log():
    assert_labelled(plot_training_log(fake_log()))
    log = TrainLog(**{k: v for k, v in fake_log(ghost=False).items()})
    fig = plot_training_log(log)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "ghost" not in labels  # a run without ghost grads does not plot a zero curve
    assert_labelled(fig)


def test_training_log_figure_rejects_an_empty_or_ragged_log():
    with pytest.raises(ValueError, match="empty"):
        plot_training_log({k: [] for k in fake_log()})
    ragged = fake_log() | {"l0": [1.0]}
    with pytest.raises(ValueError, match="'l0' has 1 entries"):
        plot_training_log(ragged)


def test_comparison_figure_has_one_line_per_method():
    fig = plot_dead_feature_comparison(fake_comparison())
    assert len(fig.axes) == 3
    assert len(fig.axes[1].get_lines()) == 3
    assert_labelled(fig)


def test_sweep_figure_highlights_the_selected_value():
    fig = plot_l1_sweep(fake_sweep(), selected=4.0)
    assert "l1_coeff = 4" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert "l1_coeff = 4" in fig.axes[2].get_title()
    assert_labelled(fig)
    assert_labelled(plot_density_histogram(fake_sweep().points[0]))


def test_tables_have_a_row_per_run_and_mark_the_chosen_value():
    assert len(comparison_table(fake_comparison()).splitlines()) == 4
    rows = sweep_table(fake_sweep()).splitlines()
    assert len(rows) == 6
    assert [r for r in rows if "*" in r][0].startswith("1 ")


def test_widget_slider_offers_every_l1_value_and_redraws(monkeypatch):
    import tutorial_sae.plots.training as tp

    drawn = []

    def recording_plot(sweep, selected=None):
        drawn.append(selected)
        return plot_l1_sweep(sweep, selected)

    monkeypatch.setattr(tp, "plot_l1_sweep", recording_plot)
    box = l1_widget(fake_sweep())
    slider, _ = box.children
    assert [v for _, v in slider.options] == [0.5, 1.0, 2.0, 4.0, 8.0]
    slider.value = 8.0
    assert drawn == [1.0, 8.0]


def test_side_by_side_table_shows_missing_values_as_dashes():
    text = metrics_side_by_side(
        {"a long column name": {"l0": 12.5, "ce_loss_recovered": 0.91}, "b": {"mse": "≈ 0.016"}}
    )
    lines = text.splitlines()
    assert len(lines) == 4
    assert "91.0%" in lines[2] and "—" in lines[2]
    assert "≈ 0.016" in text
    assert len({len(line) for line in lines}) == 1
