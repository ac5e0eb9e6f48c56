"""Build, train and evaluate the shipped mini model: `python -m tutorial_sae.build.mini_model` (appendix).

Commands: build-tokenizer, build-model [--resume] [--steps N], eval-model, all. Work files
(tokenizer, token streams, checkpoints) live in the user cache; only the finished model is
written into the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor
from tqdm.auto import tqdm

from tutorial_sae.analysis.quality import (
    eval_windows,
    greedy_continuation,
    model_loss,
    ngram_losses,
)
from tutorial_sae.data import corpus
from tutorial_sae.data.tokens import MIXTURE
from tutorial_sae.models.mini import (
    EOS_TOKEN,
    SPECIAL_TOKENS,
    MiniModelConfig,
    build_model,
    load_mini_model,
    make_tokenizer,
    save_model,
)
from tutorial_sae.paths import assets_dir, atomic_write_bytes, cache_root

# On a shared 2-core machine one thread trained 3.5x faster than two (5.1k vs 1.4k tokens/s,
# measured back to back under load): two threads wait on each other whenever a core is taken.
THREADS_HELP = "torch CPU threads (default 1; see the comment on THREADS_HELP)"
PROMPTS = {
    "en": "And it came to pass, when the",
    "code": "def __init__(self, name",
    "zh": "中国人民",
    "ar": "بسم الله الرحمن",
}


@dataclass(frozen=True)
class TokenizerConfig:
    """Byte-level BPE trained on an equal byte budget per language, so zh/ar get merges too."""

    vocab_size: int = 4096
    mb_per_language: float = 2.0
    seed: int = 0


@dataclass(frozen=True)
class MiniTrainConfig:
    """AdamW with linear warmup then cosine decay to `min_lr_frac * lr`; batches of BOS + 127."""

    steps: int = 1800
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    mixture: tuple[tuple[str, float], ...] = MIXTURE
    checkpoint_every: int = 200
    # bf16 matmuls run ~1.7x faster on this CPU (measured); weights and AdamW stay fp32.
    bf16_autocast: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError(
                f"steps, batch_size, checkpoint_every must be >= 1, got {self.steps}, "
                f"{self.batch_size}, {self.checkpoint_every}"
            )
        weights = [w for _, w in self.mixture]
        if not weights or min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {self.mixture}")


@dataclass
class MiniTrainResult:
    model: torch.nn.Module
    losses: list[float]
    tokens_seen: int
    seconds: float


def work_dir() -> Path:
    """Cache folder for the tokenizer, token streams and checkpoints (never in the repo)."""
    return cache_root() / "mini-build"


def train_tokenizer(texts: dict[str, list[str]], cfg: TokenizerConfig) -> Tokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenizer) with BOS/EOS/PAD as ids 0, 1, 2."""
    rng = random.Random(cfg.seed)
    sample = []
    for lang in sorted(texts):
        docs = list(texts[lang])
        rng.shuffle(docs)
        budget = cfg.mb_per_language * 1e6
        for doc in docs:
            if budget <= 0:
                break
            sample.append(doc)
            budget -= len(doc.encode("utf-8"))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample, trainer)
    return tokenizer


def tokenize_streams(tokenizer: Tokenizer, texts: dict[str, list[str]]) -> dict[str, Tensor]:
    """Per language, all documents' token ids in one 1-D stream, documents separated by EOS."""
    eos = tokenizer.token_to_id(EOS_TOKEN)
    streams = {}
    for lang, docs in texts.items():
        ids: list[int] = []
        for enc in tokenizer.encode_batch(docs, add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eos)
        streams[lang] = torch.tensor(ids, dtype=torch.int32)
    return streams


def batch_counts(mixture: tuple[tuple[str, float], ...], batch_size: int) -> dict[str, int]:
    """Sequences per language in each batch (largest remainder): the same mixture every step."""
    exact = {lang: w * batch_size for lang, w in mixture}
    counts = {lang: int(x) for lang, x in exact.items()}
    by_remainder = sorted(exact, key=lambda lang: counts[lang] - exact[lang])
    for lang in by_remainder[: batch_size - sum(counts.values())]:
        counts[lang] += 1
    return counts


def sample_batch(
    streams: dict[str, Tensor], cfg: MiniTrainConfig, step: int, bos: int, n_ctx: int
) -> Int[Tensor, "batch n_ctx"]:
    """Random windows of n_ctx - 1 tokens with BOS first; a function of (seed, step) alone,
    so a resumed run sees exactly the batches an uninterrupted one would."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    rows = []
    for lang, count in batch_counts(cfg.mixture, cfg.batch_size).items():
        stream = streams[lang]
        if len(stream) < n_ctx:
            raise ValueError(f"expected >= {n_ctx} tokens of {lang!r}, got {len(stream)}")
        starts = torch.randint(0, len(stream) - n_ctx + 2, (count,), generator=gen)
        rows.extend(stream[s : s + n_ctx - 1] for s in starts.tolist())
    body = torch.stack(rows).long()
    return torch.cat([torch.full((len(rows), 1), bos), body], dim=1)


def lr_at(step: int, cfg: MiniTrainConfig) -> float:
    """Learning rate at `step`: linear warmup, then cosine from `lr` down to `min_lr_frac * lr`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cosine)


def _save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())  # a crash mid-save keeps the previous one


def train_mini_model(
    model,
    streams: dict[str, Tensor],
    cfg: MiniTrainConfig,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> MiniTrainResult:
    """Next-token training of `model` on the language `streams`; checkpoints every
    `cfg.checkpoint_every` steps to `checkpoint`, and `resume` continues from it."""
    missing = [lang for lang, _ in cfg.mixture if lang not in streams]
    if missing:
        raise ValueError(f"expected streams for every mixture language, missing {missing}")
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=cfg.betas,
    )
    fingerprint = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
    start, losses, seconds = 0, [], 0.0
    path = None if checkpoint is None else Path(checkpoint)
    if resume:
        if path is None or not path.is_file():
            raise FileNotFoundError(f"--resume needs a checkpoint, found none at {path}")
        state = torch.load(path, weights_only=True)
        if state["config"] != fingerprint:
            raise ValueError(f"checkpoint was trained with {state['config']}, got {fingerprint}")
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["optimizer"])
        start, losses, seconds = state["step"], state["losses"], state["seconds"]
    bos = model.tokenizer.bos_token_id if model.tokenizer is not None else 0
    n_ctx = model.cfg.n_ctx
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress)
    began = time.perf_counter()
    for step in bar:
        tokens = sample_batch(streams, cfg, step, bos, n_ctx)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            loss = model(tokens, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        done = step + 1
        if path is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            elapsed = seconds + time.perf_counter() - began
            params = {
                k: v for k, v in model.state_dict().items() if k in dict(model.named_parameters())
            }
            _save_checkpoint(
                path,
                {
                    "step": done,
                    "model": params,
                    "optimizer": opt.state_dict(),
                    "config": fingerprint,
                    "losses": losses,
                    "seconds": elapsed,
                },
            )
    model.eval()
    seconds += time.perf_counter() - began
    return MiniTrainResult(model, losses, cfg.steps * cfg.batch_size * n_ctx, seconds)


def evaluate_quality(model, max_windows: int = 256) -> dict:
    """Held-out loss per language against unigram/bigram baselines, plus greedy samples."""
    raw = model.tokenizer.backend_tokenizer
    bos, d_vocab, n_ctx = model.tokenizer.bos_token_id, model.cfg.d_vocab, model.cfg.n_ctx
    rows = {}
    for lang in corpus.LANGUAGES:
        streams = tokenize_streams(
            raw,
            {"train": corpus.load_texts("train", lang), "eval": corpus.load_texts("eval", lang)},
        )
        windows = eval_windows(streams["eval"], n_ctx, bos, max_windows)
        n_bytes = sum(len(t.encode("utf-8")) for t in corpus.load_texts("eval", lang))
        rows[lang] = {
            "model": model_loss(model, windows),
            **ngram_losses(streams["train"], windows, d_vocab),
            "eval_tokens": int(windows[:, 1:].numel()),
            "bytes_per_token": n_bytes / len(streams["eval"]),
        }
        rows[lang]["beats_bigram"] = rows[lang]["model"] < rows[lang]["bigram"]
    samples = {
        lang: {"prompt": p, "continuation": greedy_continuation(model, p)}
        for lang, p in PROMPTS.items()
    }
    method = (
        f"mean next-token cross-entropy over the first {max_windows} non-overlapping windows "
        f"(BOS + {n_ctx - 1} tokens) of each language's eval split; unigram/bigram: add-k counts "
        "from that language's train split, k the best of a small grid on these same targets"
    )
    return {
        "method": method,
        "corpus_version": corpus.CORPUS_VERSION,
        "loss_nats_per_token": rows,
        "greedy": samples,
    }


def _tokenizer_path() -> Path:
    return work_dir() / "tokenizer.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_texts() -> dict[str, list[str]]:
    return {lang: corpus.load_texts("train", lang) for lang in corpus.LANGUAGES}


def cmd_build_tokenizer(cfg: TokenizerConfig) -> Path:
    """Train the BPE on the corpus train split into the work folder; print bytes/token."""
    began = time.perf_counter()
    tokenizer = train_tokenizer(_train_texts(), cfg)
    path = _tokenizer_path()
    atomic_write_bytes(path, tokenizer.to_str().encode("utf-8"))
    print(f"tokenizer ({tokenizer.get_vocab_size()} tokens) in {time.perf_counter() - began:.0f} s")
    for lang in corpus.LANGUAGES:
        docs = corpus.load_texts("eval", lang)
        n_tok = sum(len(e.ids) for e in tokenizer.encode_batch(docs, add_special_tokens=False))
        print(f"  {lang:5s} {sum(len(d.encode()) for d in docs) / n_tok:.2f} bytes/token (eval)")
    return path


def _streams(tokenizer_path: Path) -> dict[str, Tensor]:
    """Training token streams, cached per (tokenizer, corpus build) so reruns skip tokenizing."""
    built = corpus.built_stamp()
    key = hashlib.sha256(f"{_sha(tokenizer_path)}{built}".encode()).hexdigest()[:16]
    cache = work_dir() / f"streams-{key}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    streams = tokenize_streams(Tokenizer.from_file(str(tokenizer_path)), _train_texts())
    _save_checkpoint(cache, streams)
    return streams


def cmd_build_model(
    model_cfg: MiniModelConfig, train_cfg: MiniTrainConfig, resume: bool, out: Path
) -> MiniTrainResult:
    """Train the model on the corpus with the work folder's tokenizer; save it to `out`."""
    path = _tokenizer_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"no tokenizer at {path}; run `python -m tutorial_sae.build.mini_model build-tokenizer`"
        )
    tokenizer = make_tokenizer(path)
    streams = _streams(path)
    print("train tokens: " + ", ".join(f"{k} {len(v):,}" for k, v in streams.items()))
    model = build_model(model_cfg, tokenizer)
    result = train_mini_model(model, streams, train_cfg, work_dir() / "checkpoint.pt", resume)
    extra = {
        "train": dataclasses.asdict(train_cfg),
        "tokens_seen": result.tokens_seen,
        "train_seconds": round(result.seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "final_train_loss": float(np.mean(result.losses[-100:])),
        "train_stream_tokens": {k: len(v) for k, v in streams.items()},
        "corpus_version": corpus.CORPUS_VERSION,
        "build": "python -m tutorial_sae.build.mini_model all",
    }
    save_model(result.model, model_cfg, out, extra)
    print(f"trained {result.tokens_seen:,} tokens in {result.seconds:.0f} s; saved to {out}")
    return result


def cmd_eval_model(folder: Path) -> dict:
    """Evaluate the model in `folder`, write its quality.json and print the table."""
    model = load_mini_model("cpu", folder)
    quality = evaluate_quality(model)
    atomic_write_bytes(
        folder / "quality.json", (json.dumps(quality, indent=1, ensure_ascii=False) + "\n").encode()
    )
    os.chmod(folder / "quality.json", 0o644)
    print(f"{'lang':5s} {'model':>7s} {'bigram':>7s} {'unigram':>7s}  (nats/token, eval split)")
    for lang, row in quality["loss_nats_per_token"].items():
        print(f"{lang:5s} {row['model']:7.3f} {row['bigram']:7.3f} {row['unigram']:7.3f}")
    for lang, sample in quality["greedy"].items():
        print(f"{lang}: {sample['prompt']!r} -> {sample['continuation']!r}")
    return quality


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_sae.build.mini_model", description=__doc__
    )
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    tok = commands.add_parser("build-tokenizer", help="train the BPE on the corpus train split")
    model = commands.add_parser("build-model", help="train the model, write the package assets")
    model.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    evaluate = commands.add_parser("eval-model", help="held-out loss vs baselines -> quality.json")
    everything = commands.add_parser("all", help="build-tokenizer, build-model, eval-model")
    for sub in (model, everything):
        sub.add_argument("--steps", type=int, default=MiniTrainConfig.steps)
    for sub in (tok, everything):
        sub.add_argument("--vocab", type=int, default=TokenizerConfig.vocab_size)
    for sub in (model, evaluate, everything):
        sub.add_argument("--out", type=Path, default=assets_dir(), help="model folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command in ("build-tokenizer", "all"):
        cmd_build_tokenizer(TokenizerConfig(vocab_size=args.vocab))
    if args.command in ("build-model", "all"):
        vocab = Tokenizer.from_file(str(_tokenizer_path())).get_vocab_size()
        cmd_build_model(
            MiniModelConfig(d_vocab=vocab),
            MiniTrainConfig(steps=args.steps),
            resume=getattr(args, "resume", False),
            out=args.out,
        )
    if args.command in ("eval-model", "all"):
        cmd_eval_model(args.out)


if __name__ == "__main__":
    main()
