"""SAE runs behind chapter 3's l1_coeff widget and dead-feature comparison: run, save, load.

`python -m tutorial_sae.build.sweeps build` trains, from one seed on the mini model, one short SAE per
l1_coeff in `L1_VALUES` (-> `assets/mini/l1_sweep.json`) and one per dead-feature method, none /
ghost / resample (-> `assets/mini/dead_features.json`). Each file holds its build settings, and
the loaders check the files before a chapter plots them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from tutorial_sae.analysis.evaluation import evaluate_sae
from tutorial_sae.core.metrics import DensityHistogram
from tutorial_sae.paths import assets_dir, atomic_write_bytes
from tutorial_sae.training.presets import (
    BASE,
    CHOSEN_L1,
    DEAD_BASE,
    DEAD_FEATURE_METHODS,
    L1_VALUES,
)
from tutorial_sae.training.trainer import TrainConfig, TrainLog, train_sae

SCHEMA = 1
SWEEP_FILE = "l1_sweep.json"
DEAD_FILE = "dead_features.json"
BUILD_COMMAND = "python -m tutorial_sae.build.sweeps build"
LOG_FIELDS = (
    "step",
    "mse",
    "l1",
    "ghost",
    "l0",
    "dead_fraction",
    "explained_variance",
    "resampled",
)
POINT_FIELDS = (
    "l1_coeff",
    "l0",
    "mse",
    "explained_variance",
    "ce_loss_recovered",
    "dead_fraction",
    "dense_fraction",
)


@dataclass(frozen=True)
class SweepPoint:
    """One l1_coeff's SAE, scored on held-out tokens with `evaluate_sae`'s definitions."""

    l1_coeff: float
    l0: float
    mse: float
    explained_variance: float
    ce_loss_recovered: float
    dead_fraction: float
    dense_fraction: float
    histogram: DensityHistogram


@dataclass(frozen=True)
class L1Sweep:
    """SAEs that differ only in l1_coeff; `chosen` is the value used for mini/run1."""

    points: list[SweepPoint]
    chosen: float
    settings: dict

    def column(self, name: str) -> list[float]:
        """One metric for every point, in increasing l1_coeff."""
        if name not in POINT_FIELDS:
            raise ValueError(f"expected a metric in {POINT_FIELDS}, got {name!r}")
        return [getattr(p, name) for p in self.points]

    def point(self, l1_coeff: float) -> SweepPoint:
        """The point trained with `l1_coeff` (one of `column('l1_coeff')`)."""
        for p in self.points:
            if math.isclose(p.l1_coeff, l1_coeff, rel_tol=1e-9):
                return p
        raise ValueError(f"expected l1_coeff in {self.column('l1_coeff')}, got {l1_coeff!r}")


@dataclass(frozen=True)
class MethodRun:
    """One dead-feature method's training log (lists keyed by LOG_FIELDS) and held-out scores."""

    method: str
    log: dict[str, list[float]]
    final: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class DeadFeatureComparison:
    """Runs that differ only in `dead_features`: same seed, data order and initial SAE."""

    runs: dict[str, MethodRun]
    settings: dict


def _log_dict(log: TrainLog) -> dict[str, list[float]]:
    return {name: list(getattr(log, name)) for name in LOG_FIELDS}


def run_l1_sweep(
    model,
    train_tokens: Int[Tensor, "n_seq pos"],
    eval_tokens: Int[Tensor, "n_seq pos"],
    values: tuple[float, ...] = L1_VALUES,
    base: TrainConfig = BASE,
    chosen: float = CHOSEN_L1,
    progress: bool = True,
) -> L1Sweep:
    """Train one SAE per l1_coeff from the same seed and data order; score each held out."""
    if len(values) < 2 or list(values) != sorted(set(values)):
        raise ValueError(f"expected >= 2 distinct increasing l1_coeff values, got {values}")
    points = []
    for value in values:
        cfg = replace(base, sae=replace(base.sae, l1_coeff=value))
        sae = train_sae(model, cfg, train_tokens, progress=progress).sae
        scores = evaluate_sae(model, sae, eval_tokens, base.hook, progress=False)
        points.append(
            SweepPoint(
                l1_coeff=value,
                **{k: getattr(scores, k) for k in POINT_FIELDS if k != "l1_coeff"},
                histogram=scores.density_histogram(),
            )
        )
    return L1Sweep(points, chosen, _settings(base, train_tokens, eval_tokens))


def run_dead_feature_comparison(
    model,
    train_tokens: Int[Tensor, "n_seq pos"],
    eval_tokens: Int[Tensor, "n_seq pos"],
    base: TrainConfig = DEAD_BASE,
    methods: tuple[str, ...] = DEAD_FEATURE_METHODS,
    progress: bool = True,
) -> DeadFeatureComparison:
    """Train the same SAE with each dead-feature method; keep the logs and held-out scores."""
    runs = {}
    for method in methods:
        result = train_sae(
            model, replace(base, dead_features=method), train_tokens, progress=progress
        )
        scores = evaluate_sae(model, result.sae, eval_tokens, base.hook, progress=False)
        runs[method] = MethodRun(
            method, _log_dict(result.log), scores.as_dict(), round(result.seconds, 1)
        )
    return DeadFeatureComparison(runs, _settings(base, train_tokens, eval_tokens))


def _settings(base: TrainConfig, train_tokens: Tensor, eval_tokens: Tensor) -> dict:
    return {
        "train_config": json.loads(json.dumps(asdict(base))),
        "train_pool_tokens": train_tokens.numel(),
        "eval_tokens": eval_tokens.numel(),
        "torch_threads": torch.get_num_threads(),
    }


def save_json(obj: L1Sweep | DeadFeatureComparison, path: str | os.PathLike) -> Path:
    """Write a sweep or comparison as JSON (readable by everyone: it ships in the package)."""
    path = Path(path)
    kind = "l1_sweep" if isinstance(obj, L1Sweep) else "dead_features"
    data = {"schema": SCHEMA, "kind": kind, **asdict(obj)}
    return atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), mode=0o644)


def default_path(name: str) -> Path:
    """Where the shipped file `name` lives: the mini model's asset folder."""
    return assets_dir() / name


def _path(path, default: str) -> Path:
    if path is None:
        return default_path(default)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path (str or Path) or None, got {path!r}")
    return Path(path)


class _Reader:
    """Checks one JSON file's structure, naming the file and the field in every error."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        if not path.is_file():
            raise FileNotFoundError(f"no {kind} file at {path}; build it with `{BUILD_COMMAND}`")
        try:
            self.data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"expected JSON in {path}, got: {err}") from err
        got = (self.data.get("schema"), self.data.get("kind")) if self.is_dict(self.data) else None
        if got != (SCHEMA, kind):
            raise ValueError(f"expected schema {SCHEMA} kind {kind!r} in {path}, got {got}")

    @staticmethod
    def is_dict(value) -> bool:
        return isinstance(value, dict)

    def fail(self, where: str, expected: str, got) -> ValueError:
        shown = repr(got) if len(repr(got)) < 80 else type(got).__name__
        return ValueError(f"{self.path}: expected {where} to be {expected}, got {shown}")

    def number(self, value, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise self.fail(where, "a finite number", value)
        return float(value)

    def numbers(self, value, where: str, length: int | None = None) -> list[float]:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            raise self.fail(where, f"a list of {length or 'some'} numbers", value)
        return [self.number(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def mapping(self, value, where: str, keys: tuple[str, ...]) -> dict:
        if not self.is_dict(value) or any(k not in value for k in keys):
            raise self.fail(where, f"an object with keys {list(keys)}", value)
        return value

    def histogram(self, value, where: str) -> DensityHistogram:
        h = self.mapping(value, where, ("edges", "counts", "dead", "n_tokens"))
        counts = self.numbers(h["counts"], f"{where}.counts")
        edges = self.numbers(h["edges"], f"{where}.edges", len(counts) + 1)
        try:
            return DensityHistogram(
                edges,
                [int(c) for c in counts],
                int(self.number(h["dead"], f"{where}.dead")),
                int(self.number(h["n_tokens"], f"{where}.n_tokens")),
            )
        except ValueError as err:
            raise ValueError(f"{self.path}: {where}: {err}") from err


def load_l1_sweep(path: str | os.PathLike | None = None) -> L1Sweep:
    """The precomputed l1_coeff sweep (default: the shipped `assets/mini/l1_sweep.json`).

    Raises ValueError naming the file and field when the file is malformed.
    """
    r = _Reader(_path(path, SWEEP_FILE), "l1_sweep")
    raw = r.mapping(r.data, "the file", ("points", "chosen", "settings"))
    if not isinstance(raw["points"], list) or len(raw["points"]) < 5:
        raise r.fail("points", "a list of >= 5 sweep points", raw["points"])
    points = []
    for i, p in enumerate(raw["points"]):
        p = r.mapping(p, f"points[{i}]", (*POINT_FIELDS, "histogram"))
        values = {k: r.number(p[k], f"points[{i}].{k}") for k in POINT_FIELDS}
        points.append(
            SweepPoint(**values, histogram=r.histogram(p["histogram"], f"points[{i}].histogram"))
        )
    l1s = [p.l1_coeff for p in points]
    if l1s != sorted(set(l1s)):
        raise r.fail("points' l1_coeff", "strictly increasing", l1s)
    chosen = r.number(raw["chosen"], "chosen")
    if not any(math.isclose(chosen, v, rel_tol=1e-9) for v in l1s):
        raise r.fail("chosen", f"one of {l1s}", chosen)
    return L1Sweep(points, chosen, r.mapping(raw["settings"], "settings", ()))


def load_dead_feature_comparison(path: str | os.PathLike | None = None) -> DeadFeatureComparison:
    """The precomputed none / ghost / resample runs (default: `assets/mini/dead_features.json`)."""
    r = _Reader(_path(path, DEAD_FILE), "dead_features")
    raw = r.mapping(r.data, "the file", ("runs", "settings"))
    runs_raw = r.mapping(raw["runs"], "runs", ())
    if not runs_raw:
        raise r.fail("runs", "a non-empty object", runs_raw)
    runs = {}
    for name, run in runs_raw.items():
        run = r.mapping(run, f"runs.{name}", ("method", "log", "final", "seconds"))
        log = r.mapping(run["log"], f"runs.{name}.log", LOG_FIELDS)
        n = len(log["step"]) if isinstance(log["step"], list) else -1
        checked = {k: r.numbers(log[k], f"runs.{name}.log.{k}", n) for k in LOG_FIELDS}
        final = r.mapping(run["final"], f"runs.{name}.final", POINT_FIELDS[1:])
        scores = {k: r.number(v, f"runs.{name}.final.{k}") for k, v in final.items()}
        runs[name] = MethodRun(name, checked, scores, r.number(run["seconds"], "seconds"))
    return DeadFeatureComparison(runs, r.mapping(raw["settings"], "settings", ()))
