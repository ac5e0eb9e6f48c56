"""How good is an SAE inside its model: sparsity, reconstruction and CE loss recovered (chapters 3-8)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from tutorial_sae.analysis.interventions import (
    SAESplice,
    mean_ablation,
    run_with_intervention,
    zero_ablation,
)
from tutorial_sae.core.metrics import (
    DensityHistogram,
    ce_loss_recovered,
    dead_fraction,
    dense_fraction,
    density_histogram,
    firing_counts,
    l0,
    mse,
)
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK, check_tokens, run_to_hook
from tutorial_sae.utils import check_hook, check_int, check_sae


@dataclass(frozen=True)
class SAEMetrics:
    """An SAE's scores on `n_tokens` tokens; CE losses are nats per predicted token.

    ce_loss_recovered = (zero - reconstructed) / (zero - clean): 1 when splicing in the
    reconstruction costs nothing, 0 when it is as bad as deleting the layer's output (Nanda's
    run1 metric). The mean-ablation version replaces "zero" by the mean activation over the
    non-BOS tokens (Bricken et al. 2023).
    """

    n_tokens: int
    l0: float
    mse: float
    explained_variance: float
    ce_loss_clean: float
    ce_loss_reconstructed: float
    ce_loss_zero_ablated: float
    ce_loss_mean_ablated: float
    ce_loss_recovered: float
    ce_loss_recovered_mean_ablation: float
    dead_fraction: float
    dense_fraction: float
    # How many of the n_tokens each feature fired on: density is firing_counts / n_tokens.
    firing_counts: Int[Tensor, " d_sae"] = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        """The scalar scores (everything but `firing_counts`), e.g. for JSON and tables."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "firing_counts"}

    def density(self) -> Float[Tensor, " d_sae"]:
        """Fraction of the evaluated tokens on which each feature fired."""
        return self.firing_counts.double() / self.n_tokens

    def density_histogram(self, bins: int = 24) -> DensityHistogram:
        """`core.metrics.density_histogram` of these firing counts."""
        return density_histogram(self.firing_counts, self.n_tokens, bins)

    def table(self) -> str:
        """Two aligned columns, metric and value, for printing in a chapter."""
        width = max(len(k) for k in self.as_dict())
        rows = []
        for key, value in self.as_dict().items():
            shown = f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
            if key.startswith("ce_loss_recovered") or key.endswith("_fraction"):
                shown = f"{value:.2%}"
            rows.append(f"{key:<{width}}  {shown:>12}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def _bos_id(model) -> int | None:
    tokenizer = getattr(model, "tokenizer", None)
    return None if tokenizer is None else tokenizer.bos_token_id


@torch.no_grad()
def _mean_activation(model, tokens: Tensor, hook: str, batch_size: int, progress: bool) -> Tensor:
    """Mean activation over the evaluated tokens except BOS (the mean-ablation value), float64.

    The BOS position's activation is an outlier far from every other token's (on mini it
    moved the mean enough to make mean-ablation cost more than zero-ablation), and it is
    not a prediction the metric scores, so it is left out of the mean.
    """
    total, count = None, 0
    bos = _bos_id(model)
    for i in tqdm(range(0, len(tokens), batch_size), desc="mean activation", disable=not progress):
        batch = tokens[i : i + batch_size]
        act = run_to_hook(model, batch, hook).double()
        keep = (batch != bos) if bos is not None else torch.ones_like(batch, dtype=torch.bool)
        act = act[keep.to(act.device)]
        total = act.sum(0) if total is None else total + act.sum(0)
        count += act.shape[0]
    if count == 0:
        raise ValueError("expected at least one non-BOS token to average, got only BOS tokens")
    return total / count


@torch.no_grad()
def evaluate_sae(
    model,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    hook: str = DEFAULT_HOOK,
    batch_size: int = 8,
    progress: bool = True,
) -> SAEMetrics:
    """Score `sae` at `hook` of `model` on `tokens`, the reconstruction spliced in.

    Two passes, memory bounded by one batch: the first takes the mean activation over non-BOS
    tokens (the mean-ablation value and explained variance's centre), the second runs four
    forwards per batch through `interventions.run_with_intervention` (clean, reconstructed,
    zero- and mean-ablated) and accumulates sums. l0, mse, firing counts, dead and dense
    fractions are `tutorial_sae.core.metrics`' definitions over all tokens; explained variance
    is 1 - sum ||x - x_hat||^2 / sum ||x - mean||^2. Each forward holds batch_size x pos x
    d_vocab logits: 8 x 128 sequences of gelu-1l (d_vocab 48,262) take 200 MB.
    """
    check_tokens(tokens, model)
    check_sae(sae)
    check_hook(model, hook)
    check_int(batch_size, "batch_size")
    if tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ValueError(f"expected >= 1 sequence of >= 2 tokens, got {tuple(tokens.shape)}")
    mean_act = _mean_activation(model, tokens, hook, batch_size, progress)
    if mean_act.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} but {hook} has width {mean_act.shape[-1]}")
    sums = dict.fromkeys(("l0", "mse", "resid", "total", "clean", "recon", "zero", "mean"), 0.0)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.int64)
    n_tok = n_pred = 0
    splice = SAESplice(sae, keep_error=False, record=True)

    def reconstruct_and_score(act: Tensor) -> Tensor:
        out = splice(act)
        x = act.reshape(-1, act.shape[-1]).to(sae.W_enc.device, sae.W_enc.dtype)
        x_hat = out.reshape(x.shape).to(x.device, x.dtype)
        f, n = splice.latents, x.shape[0]
        sums["l0"] += l0(f) * n
        sums["mse"] += mse(x, x_hat) * n
        sums["resid"] += float((x - x_hat).double().pow(2).sum())
        sums["total"] += float((x.double() - mean_act.to(x.device)).pow(2).sum())
        fired.add_(firing_counts(f).cpu())
        return out

    runs = {
        "clean": None,
        "recon": reconstruct_and_score,
        "zero": zero_ablation,
        "mean": mean_ablation(mean_act),
    }
    for i in tqdm(range(0, len(tokens), batch_size), desc="evaluate SAE", disable=not progress):
        batch = tokens[i : i + batch_size]
        n_batch_pred = batch.shape[0] * (batch.shape[1] - 1)
        for name, intervention in runs.items():
            # Mean loss times the count: TL's loss_per_token=True is ~3x slower for the same sum.
            loss = run_with_intervention(model, batch, intervention, hook, return_type="loss")
            sums[name] += float(loss) * n_batch_pred
        n_tok += batch.numel()
        n_pred += n_batch_pred
    clean, recon, zero, mean = (sums[k] / n_pred for k in ("clean", "recon", "zero", "mean"))
    density = fired.double() / n_tok
    return SAEMetrics(
        n_tokens=n_tok,
        l0=sums["l0"] / n_tok,
        mse=sums["mse"] / n_tok,
        explained_variance=1 - sums["resid"] / sums["total"],
        ce_loss_clean=clean,
        ce_loss_reconstructed=recon,
        ce_loss_zero_ablated=zero,
        ce_loss_mean_ablated=mean,
        ce_loss_recovered=ce_loss_recovered(clean, recon, zero),
        ce_loss_recovered_mean_ablation=ce_loss_recovered(clean, recon, mean),
        dead_fraction=dead_fraction(density),
        dense_fraction=dense_fraction(density),
        firing_counts=fired,
    )
