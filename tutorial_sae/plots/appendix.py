"""Markdown tables about the shipped mini model and SAEs for the book's appendix."""

from __future__ import annotations

import json
from pathlib import Path

from tutorial_sae.data import corpus
from tutorial_sae.paths import assets_dir

MINI_MODEL_BUILD = "python -m tutorial_sae.build.mini_model all"
LANG_NAMES = {"en": "English", "code": "Python code", "zh": "Chinese", "ar": "Arabic"}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"expected {path.name} in {path.parent}; rebuild the mini assets with "
            "`python -m tutorial_sae.build.mini_model all` and `python -m tutorial_sae.build.saes build`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def quality_markdown(folder: Path | None = None) -> str:
    """Held-out loss per language of the mini model against unigram and bigram baselines."""
    quality = _read_json((folder or assets_dir()) / "quality.json")
    rows = [
        "| language | mini model | bigram | unigram | eval tokens | bytes/token |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lang, q in quality["loss_nats_per_token"].items():
        rows.append(
            f"| {LANG_NAMES.get(lang, lang)} | **{q['model']:.3f}** | {q['bigram']:.3f} | "
            f"{q['unigram']:.3f} | {q['eval_tokens']:,} | {q['bytes_per_token']:.2f} |"
        )
    return "\n".join(rows)


def samples_markdown(folder: Path | None = None) -> str:
    """The greedy continuation of one prompt per language."""
    quality = _read_json((folder or assets_dir()) / "quality.json")
    rows = ["| language | prompt | greedy continuation |", "| --- | --- | --- |"]
    for lang, s in quality["greedy"].items():
        cont = s["continuation"].replace("\n", "⏎").replace("|", "\\|")
        rows.append(f"| {LANG_NAMES.get(lang, lang)} | `{s['prompt']}` | {cont} |")
    return "\n".join(rows)


def model_markdown(folder: Path | None = None) -> str:
    """Shape and training budget of the mini model."""
    cfg = _read_json((folder or assets_dir()) / "config.json")
    m, t = cfg["model"], cfg["train"]
    mixture = ", ".join(f"{LANG_NAMES.get(k, k)} {w:.0%}" for k, w in t["mixture"])
    return "\n".join(
        [
            "| property | value |",
            "| --- | --- |",
            "| layers | 1 (attention + GELU MLP, LayerNorm) |",
            f"| d_model / d_mlp | {m['d_model']} / {4 * m['d_model']} |",
            f"| heads | {m['n_heads']} |",
            f"| context | {m['n_ctx']} tokens |",
            f"| vocabulary | {m['d_vocab']:,} (byte-level BPE) |",
            f"| training | {cfg['tokens_seen']:,} tokens in {cfg['train_seconds'] / 60:.0f} min "
            f"on {cfg['torch_threads']} CPU thread(s) |",
            f"| data mixture | {mixture} |",
            # The command as it is today (config.json records the one of its own build).
            f"| rebuild | `{MINI_MODEL_BUILD}` |",
        ]
    )


def saes_markdown(folder: Path | None = None) -> str:
    """Held-out scores of every shipped mini SAE (one row per `saes/<name>/metrics.json`)."""
    root = (folder or assets_dir()) / "saes"
    paths = sorted(root.glob("*/metrics.json"))
    if not paths:
        raise FileNotFoundError(f"no SAE metrics found under {root}")
    rows = [
        "| SAE | d_sae | L0 | explained variance | CE recovered (zero) | CE recovered (mean) "
        "| dead | dense | train time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in paths:
        m = _read_json(path)
        e = m["eval"]
        d_sae = m["train_config"]["sae"]["d_sae"]
        rows.append(
            f"| {m['name']} | {d_sae:,} | {e['l0']:.1f} | {e['explained_variance']:.1%} | "
            f"{e['ce_loss_recovered']:.1%} | {e['ce_loss_recovered_mean_ablation']:.1%} | "
            f"{e['dead_fraction']:.1%} | {e['dense_fraction']:.1%} | "
            f"{m['train_seconds'] / 60:.1f} min |"
        )
    return "\n".join(rows)


_COLUMNS = (
    ("Source", "source"),
    ("Package", "package"),
    ("Version", "version"),
    ("Language", "language"),
    ("MB", "mb"),
    ("Documents", "documents"),
    ("Licence", "licence"),
)


def provenance_markdown(rows: list[dict] | None = None) -> str:
    """The provenance rows (default: the built corpus's) as a markdown table."""
    rows = corpus.provenance() if rows is None else rows
    lines = ["| " + " | ".join(title for title, _ in _COLUMNS) + " |"]
    lines.append(
        "|" + "|".join("---:" if k in ("mb", "documents") else "---" for _, k in _COLUMNS) + "|"
    )
    for row in rows:
        cells = (str(row[key]).replace("|", "\\|") for _, key in _COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quality_summary(folder: Path | None = None) -> dict[str, float]:
    """The appendix's numbers about the mini model: its margin over the bigram baseline."""
    quality = _read_json((folder or assets_dir()) / "quality.json")
    margins = [q["bigram"] - q["model"] for q in quality["loss_nats_per_token"].values()]
    return {"min_margin": min(margins), "max_margin": max(margins)}
