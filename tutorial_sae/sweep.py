"""Precomputed SAE runs behind chapter 3's l1_coeff widget and dead-feature comparison.

`python -m tutorial_sae.sweep build` trains, from one seed on the mini model, one short SAE per
l1_coeff in `L1_VALUES` (-> `assets/mini/l1_sweep.json`) and one per dead-feature method, none /
ghost / resample (-> `assets/mini/dead_features.json`). Each file holds its build settings, and
the loaders check the files before a chapter plots them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.activations import collect_activations
from tutorial_sae.evaluation import evaluate_sae
from tutorial_sae.metrics import feature_density
from tutorial_sae.sae import SAE, SAEConfig
from tutorial_sae.sae_zoo import RUN1
from tutorial_sae.train import TrainConfig, TrainLog, train_sae
from tutorial_sae.utils import atomic_write_bytes

SCHEMA = 1
SWEEP_FILE = "l1_sweep.json"
DEAD_FILE = "dead_features.json"
# The value mini/run1 was trained with, highlighted in the chapter's figures; the sweep spans
# factors 1/4 to 8 around it on a doubling grid.
CHOSEN_L1 = RUN1.sae.l1_coeff
L1_VALUES = tuple(CHOSEN_L1 * 2.0**k for k in range(-2, 4))
METHODS = ("none", "ghost", "resample")
TRAIN_TOKENS = 1_048_576
EVAL_TOKENS = 16_384
# Short runs at 4x expansion (2,048 features on the mini model's 512 MLP neurons) so the whole
# build takes minutes on a laptop CPU; windows are scaled to the run length so that features
# can be declared dead, and resampled, several times within it.
BASE = TrainConfig(
    sae=SAEConfig(d_in=512, d_sae=2048, l1_coeff=CHOSEN_L1, seed=49),
    n_steps=200,
    batch_size=1024,
    lr=1e-3,
    dead_features="ghost",
    dead_window=50,
    resample_every=100,
    buffer_batches=16,
    log_every=10,
    checkpoint_every=10_000,
    seed=49,
)
# With BASE almost no feature dies within a short run (the encoder starts as the decoder's
# transpose and b_dec at the data mean, the fixes that made ghost grads less needed), so the
# comparison provokes deaths with a 3x larger learning rate and a 25-step window.
DEAD_BASE = replace(BASE, lr=3e-3, dead_window=25, resample_every=50)
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
class DensityHistogram:
    """Counts of log10 feature density in `edges` bins; features that never fired are `dead`."""

    edges: list[float]
    counts: list[int]
    dead: int
    n_tokens: int


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


def density_histogram(
    density: Float[Tensor, " d_sae"], n_tokens: int, bins: int = 24
) -> DensityHistogram:
    """Histogram of log10 density of the features that fired, from log10(1 / n_tokens) to 0.

    The lowest measurable non-zero density is one firing in `n_tokens`, so the bins start there;
    features that never fired have no logarithm and are counted apart as `dead`.
    """
    if density.ndim != 1 or n_tokens < 1:
        raise ValueError(
            f"expected a 1-D density and n_tokens >= 1, got {tuple(density.shape)}, {n_tokens}"
        )
    low = math.floor(math.log10(1 / n_tokens))
    # Clamped because a density of exactly 1 / n_tokens, rounded in float32, can fall a hair
    # below the first edge, where histc would silently drop it.
    log_alive = density[density > 0].double().log10().clamp(low, 0.0)
    counts = torch.histc(log_alive, bins=bins, min=low, max=0.0)
    edges = torch.linspace(low, 0.0, bins + 1)
    return DensityHistogram(
        [round(e, 6) for e in edges.tolist()],
        [int(c) for c in counts.tolist()],
        int((density == 0).sum()),
        n_tokens,
    )


@torch.no_grad()
def heldout_density(sae: SAE, acts: Float[Tensor, "n d_in"], chunk: int = 4096) -> Tensor:
    """Firing frequency of every feature over `acts`, encoded `chunk` rows at a time."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for i in range(0, len(acts), chunk):
        part = acts[i : i + chunk].to(sae.W_enc.device)
        fired += feature_density(sae.encode(part)).double().cpu() * len(part)
    return (fired / len(acts)).float()


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
    acts = collect_activations(model, eval_tokens, base.hook, progress=False)
    acts = acts.reshape(-1, acts.shape[-1])
    points = []
    for value in values:
        cfg = replace(base, sae=replace(base.sae, l1_coeff=value))
        sae = train_sae(model, cfg, train_tokens, progress=progress).sae
        scores = evaluate_sae(model, sae, eval_tokens, base.hook, progress=False)
        density = heldout_density(sae, acts)
        points.append(
            SweepPoint(
                l1_coeff=value,
                **{k: getattr(scores, k) for k in POINT_FIELDS if k != "l1_coeff"},
                histogram=density_histogram(density, len(acts)),
            )
        )
    return L1Sweep(points, chosen, _settings(base, train_tokens, eval_tokens))


def run_dead_feature_comparison(
    model,
    train_tokens: Int[Tensor, "n_seq pos"],
    eval_tokens: Int[Tensor, "n_seq pos"],
    base: TrainConfig = DEAD_BASE,
    methods: tuple[str, ...] = METHODS,
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
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    os.chmod(path, 0o644)
    return path


def default_path(name: str) -> Path:
    """Where the shipped file `name` lives: the mini model's asset folder."""
    return Path(__file__).parent / "assets" / "mini" / name


class _Reader:
    """Checks one JSON file's structure, naming the file and the field in every error."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        if not path.is_file():
            raise FileNotFoundError(
                f"no {kind} file at {path}; build it with `python -m tutorial_sae.sweep build`"
            )
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
        if edges != sorted(edges) or any(c < 0 for c in counts):
            raise self.fail(where, "increasing edges and counts >= 0", h)
        return DensityHistogram(
            edges,
            [int(c) for c in counts],
            int(self.number(h["dead"], f"{where}.dead")),
            int(self.number(h["n_tokens"], f"{where}.n_tokens")),
        )


def load_l1_sweep(path: str | os.PathLike | None = None) -> L1Sweep:
    """The precomputed l1_coeff sweep (default: the shipped `assets/mini/l1_sweep.json`).

    Raises ValueError naming the file and field when the file is malformed.
    """
    r = _Reader(Path(path) if path is not None else default_path(SWEEP_FILE), "l1_sweep")
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
    r = _Reader(Path(path) if path is not None else default_path(DEAD_FILE), "dead_features")
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


def build(what: tuple[str, ...], n_steps: int, out_dir: Path, model_folder: Path | None) -> None:
    """Train and write the requested files, printing one line per file."""
    from tutorial_sae.loading import load_tokens
    from tutorial_sae.model import load_mini_model

    model = load_mini_model("cpu", model_folder)
    train = load_tokens("mini", "train", TRAIN_TOKENS, tokenizer=model.tokenizer)
    held_out = load_tokens("mini", "eval", EVAL_TOKENS, tokenizer=model.tokenizer)
    base = replace(BASE, n_steps=n_steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "sweep" in what:
        start = time.perf_counter()
        sweep = run_l1_sweep(model, train, held_out, base=base)
        path = save_json(sweep, out_dir / SWEEP_FILE)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
        for p in sweep.points:
            print(
                f"  l1 {p.l1_coeff:<5} L0 {p.l0:7.1f}  EV {p.explained_variance:6.1%}  "
                f"CE rec {p.ce_loss_recovered:6.1%}  dead {p.dead_fraction:6.1%}  "
                f"dense {p.dense_fraction:6.1%}"
            )
    if "dead" in what:
        start = time.perf_counter()
        dead_base = replace(DEAD_BASE, n_steps=n_steps)
        comparison = run_dead_feature_comparison(model, train, held_out, base=dead_base)
        path = save_json(comparison, out_dir / DEAD_FILE)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
        for name, run in comparison.runs.items():
            f = run.final
            print(
                f"  {name:<8} L0 {f['l0']:7.1f}  EV {f['explained_variance']:6.1%}  CE rec "
                f"{f['ce_loss_recovered']:6.1%}  dead {f['dead_fraction']:6.1%}  "
                f"train-log dead {run.log['dead_fraction'][-1]:6.1%}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tutorial_sae.sweep", description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("build", help="train the sweep and comparison SAEs, write JSON")
    cmd.add_argument("--only", nargs="+", choices=("sweep", "dead"), default=["sweep", "dead"])
    cmd.add_argument("--steps", type=int, default=BASE.n_steps, help="training steps per SAE")
    cmd.add_argument("--out", type=Path, default=default_path(""), help="folder for the JSON")
    cmd.add_argument("--model-folder", type=Path, default=None, help="mini model to use")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build(tuple(args.only), args.steps, args.out, args.model_folder)


if __name__ == "__main__":
    main()
