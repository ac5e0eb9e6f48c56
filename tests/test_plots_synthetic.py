"""Chapter 2's figures and the numbers behind them: true L0, overlaps, recovery, safeguard traces."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from tutorial_sae.core.decoder_norms import (
    SAFEGUARD_VARIANTS,
    VariantSAE,
    compare_safeguards,
    train_tracing_norms,
)
from tutorial_sae.core.sae import SAEConfig
from tutorial_sae.core.synthetic import (
    SparseDataset,
    feature_recovery,
    make_sparse_dataset,
    recovered_fraction,
)
from tutorial_sae.plots.synthetic import (
    plot_norm_traces,
    plot_recovery,
    plot_training_curves,
    safeguard_table,
)

CFG = SAEConfig(d_in=16, d_sae=32, l1_coeff=0.1, seed=0)


def assert_labelled(fig, n_panels: int) -> None:
    """Every panel has a title and both axis labels; at most two panels share a row."""
    assert len(fig.axes) == n_panels
    rows: dict[float, int] = {}
    for ax in fig.axes:
        assert ax.get_title(), "an axis has no title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"axis {ax.get_title()!r} lacks a label"
        row = round(ax.get_position().y0, 2)
        rows[row] = rows.get(row, 0) + 1
    assert max(rows.values()) <= 2, f"more than two panels in a row: {rows}"
    plt.close(fig)


@pytest.fixture(scope="module")
def comparison(one_thread):
    data = make_sparse_dataset(24, 16, 0.9, n_samples=4000, seed=0)
    return data, compare_safeguards(data.x, data.dictionary, CFG, 60, batch_size=128, seed=1)


def test_dataset_reports_its_true_l0_and_largest_overlap():
    codes = torch.tensor([[1.0, 0, 0], [0.5, 0.2, 0], [0, 0, 0], [1, 1, 1]])
    dictionary = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.6, 0.8]])
    ds = SparseDataset(x=codes @ dictionary, codes=codes, dictionary=dictionary)
    assert ds.mean_l0 == pytest.approx(6 / 4)
    assert ds.max_overlap == pytest.approx(0.8)
    big = make_sparse_dataset(50, 10, 0.9, n_samples=4000, seed=1)
    assert big.mean_l0 == pytest.approx(50 * 0.1, rel=0.05)


def test_recovered_fraction_counts_cosines_at_or_above_the_threshold():
    assert recovered_fraction(torch.tensor([0.95, 0.9, 0.89, 0.2])) == 0.5
    assert recovered_fraction(torch.tensor([0.95, 0.9, 0.89, 0.2]), threshold=0.5) == 0.75
    with pytest.raises(ValueError, match="1-D"):
        recovered_fraction(torch.ones(2, 2))


def test_compare_safeguards_equals_training_each_variant_alone(comparison):
    data, result = comparison
    assert list(result.traces) == list(SAFEGUARD_VARIANTS)
    alone = VariantSAE(CFG, SAFEGUARD_VARIANTS["projection only"])
    trace = train_tracing_norms(alone, data.x, 60, batch_size=128, seed=1)
    assert result.traces["projection only"].mean_decoder_norm == trace.mean_decoder_norm
    for name, sae in result.saes.items():
        best = feature_recovery(sae, data.dictionary)
        assert result.recovered[name] == recovered_fraction(best)


def test_only_the_full_safeguards_keep_unit_norms(comparison):
    _, result = comparison
    assert result.traces["all safeguards"].max_norm_error[-1] < 1e-5
    assert result.traces["projection only"].max_norm_error[-1] > 1e-3
    assert result.traces["none"].max_norm_error[-1] > 1e-3


def test_training_curves_show_loss_parts_and_the_true_l0():
    log = SimpleNamespace(
        step=[25, 50, 75], mse=[0.3, 0.1, 0.08], l1=[0.3, 0.15, 0.14], l0=[26.0, 12.0, 7.0]
    )
    fig = plot_training_curves(log, true_l0=3.2)
    assert fig.axes[0].get_yscale() == "log"
    assert [tuple(line.get_ydata()) for line in fig.axes[1].lines][1] == (3.2, 3.2)
    assert_labelled(fig, 2)


def test_recovery_histogram_counts_every_true_feature():
    best = torch.tensor([0.2, 0.5, 0.91, 0.95, 0.99, 1.0])
    fig = plot_recovery(best)
    assert sum(p.get_height() for p in fig.axes[0].patches) == len(best)
    assert_labelled(fig, 1)


def test_norm_traces_are_a_two_by_two_grid_with_a_line_per_variant(comparison):
    _, result = comparison
    fig = plot_norm_traces(result)
    assert all(len(ax.lines) == len(SAFEGUARD_VARIANTS) for ax in fig.axes)
    assert_labelled(fig, 4)


def test_safeguard_table_has_a_row_per_variant_with_its_recovery(comparison):
    _, result = comparison
    rows = safeguard_table(result).splitlines()
    assert len(rows) == 1 + len(SAFEGUARD_VARIANTS)
    for row, (name, share) in zip(rows[1:], result.recovered.items(), strict=True):
        assert row.startswith(name) and row.endswith(f"{share:.0%}")
