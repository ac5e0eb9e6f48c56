"""Training's peak memory grows with the buffer the config names and stays below the bound."""

import argparse
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"
MiB = 2**20


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bound_adds_up(bench):
    b = bench.memory_bound(
        d_in=8, d_sae=32, batch=16, buffer_batches=4, model_batch=2, seq_len=4, d_model=4, n_heads=2
    )
    assert b["params"] == 4 * (2 * 8 * 32 + 32 + 8) * 4
    assert b["buffer"] == (4 * 16 + 2 * 4) * 8 * 4
    refill = 2 * b["buffer"] + b["forward"]
    step = b["buffer"] + b["step"]
    assert b["bound"] == b["params"] + max(refill, step) + bench.SLACK


def test_peak_rss_grows_with_the_buffer_and_stays_below_the_bound(bench):
    # d_in 256, d_sae 1024: the buffer (4 or 64 batches of 512 tokens) dominates the SAE
    shape = dict(d_in=256, d_sae=1024, batch=512, model_batch=16, seq_len=64, d_model=32)
    # the table stand-in for the model: transformer_lens would take most of the time to import
    args = argparse.Namespace(**shape, n_heads=2, vocab=500, steps=1, table_model=True)
    sizes = [4, 64]
    got = bench.measure(args, sizes)
    for k, peak in zip(sizes, got["peaks"], strict=True):
        b = bench.memory_bound(buffer_batches=k, n_heads=2, **shape)
        grown = peak - got["baseline"]
        assert grown <= b["bound"], f"{k} batches: grew {grown / MiB:.0f} MiB > bound ({got})"
    big = bench.memory_bound(buffer_batches=64, n_heads=2, **shape)
    grown_big = got["peaks"][1] - got["baseline"]
    # a refill holds the staging tensor and the shuffled copy, both written in full
    assert grown_big >= 1.8 * big["buffer"], f"grew {grown_big / MiB:.0f} MiB"
