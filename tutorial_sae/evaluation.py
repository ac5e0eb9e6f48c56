"""How good is an SAE inside its model: sparsity, reconstruction and CE loss recovered (chapters 3-8)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from tutorial_sae.activations import DEFAULT_HOOK, _check_tokens, run_to_hook
from tutorial_sae.metrics import dead_fraction, dense_fraction, feature_density, l0, mse
from tutorial_sae.sae import SAE


@dataclass(frozen=True)
class SAEMetrics:
    """An SAE's scores on `n_tokens` tokens; CE losses are nats per predicted token.

    ce_loss_recovered = (zero - reconstructed) / (zero - clean): 1 when splicing in the
    reconstruction costs nothing, 0 when it is as bad as deleting the layer's output (Nanda's
    run1 metric). The mean-ablation version replaces "zero" by the mean activation, a harder
    baseline (Bricken et al. 2023).
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

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

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


def _recovered(baseline: float, reconstructed: float, clean: float) -> float:
    gap = baseline - clean
    return float("nan") if gap == 0 else (baseline - reconstructed) / gap


@torch.no_grad()
def _mean_activation(model, tokens: Tensor, hook: str, batch_size: int, progress: bool) -> Tensor:
    """Mean activation over every evaluated token (the mean-ablation value), in float64."""
    total, count = None, 0
    for i in tqdm(range(0, len(tokens), batch_size), desc="mean activation", disable=not progress):
        act = run_to_hook(model, tokens[i : i + batch_size], hook).double()
        act = act.reshape(-1, act.shape[-1])
        total = act.sum(0) if total is None else total + act.sum(0)
        count += act.shape[0]
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
    """Score `sae` at `hook` of `model` on `tokens`, the reconstruction spliced in by a hook.

    Two passes, memory bounded by one batch: the first takes the mean activation (for mean
    ablation and explained variance), the second runs four forwards per batch (clean,
    reconstructed, zero- and mean-ablated) and accumulates sums. l0, mse, density, dead and
    dense fractions are `tutorial_sae.metrics`' definitions over all tokens; explained variance
    is 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 with the mean over all tokens, as in
    `metrics.explained_variance`. Each forward holds batch_size x pos x d_vocab logits: 8 x 128
    sequences of gelu-1l (d_vocab 48,262) take 200 MB.
    """
    _check_tokens(tokens)
    if hook not in model.hook_dict:
        raise ValueError(f"hook must be one of the model's hook points, got {hook!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected batch_size to be a positive int, got {batch_size!r}")
    if tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ValueError(f"expected >= 1 sequence of >= 2 tokens, got {tuple(tokens.shape)}")
    device = model.cfg.device
    mean_act = _mean_activation(model, tokens, hook, batch_size, progress)
    if mean_act.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} but {hook} has width {mean_act.shape[-1]}")
    sums = dict.fromkeys(("l0", "mse", "resid", "total", "clean", "recon", "zero", "mean"), 0.0)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    n_tok = n_pred = 0

    def splice(replacement):
        def hook_fn(act: Tensor, hook) -> Tensor:
            return replacement(act).to(act.dtype)

        return hook_fn

    def reconstruct(act: Tensor) -> Tensor:
        x = act.reshape(-1, act.shape[-1]).to(sae.W_enc.device, sae.W_enc.dtype)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        n = x.shape[0]
        sums["l0"] += l0(f) * n
        sums["mse"] += mse(x, x_hat) * n
        sums["resid"] += float((x - x_hat).double().pow(2).sum())
        centred = x.double() - mean_act.to(x.device)
        sums["total"] += float(centred.pow(2).sum())
        fired.add_(feature_density(f).double().cpu() * n)
        return x_hat.reshape(act.shape).to(act.device)

    def losses(fwd_hooks) -> float:
        # Mean loss times the count: TL's loss_per_token=True is ~3x slower for the same sum.
        mean_loss = model.run_with_hooks(batch, return_type="loss", fwd_hooks=fwd_hooks)
        return float(mean_loss) * batch.shape[0] * (batch.shape[1] - 1)

    for i in tqdm(range(0, len(tokens), batch_size), desc="evaluate SAE", disable=not progress):
        batch = tokens[i : i + batch_size].to(device)
        sums["clean"] += losses([])
        sums["recon"] += losses([(hook, splice(reconstruct))])
        sums["zero"] += losses([(hook, splice(torch.zeros_like))])
        sums["mean"] += losses([(hook, splice(lambda act: mean_act.to(act.device).expand_as(act)))])
        n_tok += batch.numel()
        n_pred += batch.shape[0] * (batch.shape[1] - 1)
    clean, recon, zero, mean = (sums[k] / n_pred for k in ("clean", "recon", "zero", "mean"))
    density = (fired / n_tok).float()
    return SAEMetrics(
        n_tokens=n_tok,
        l0=sums["l0"] / n_tok,
        mse=sums["mse"] / n_tok,
        explained_variance=1 - sums["resid"] / sums["total"],
        ce_loss_clean=clean,
        ce_loss_reconstructed=recon,
        ce_loss_zero_ablated=zero,
        ce_loss_mean_ablated=mean,
        ce_loss_recovered=_recovered(zero, recon, clean),
        ce_loss_recovered_mean_ablation=_recovered(mean, recon, clean),
        dead_fraction=dead_fraction(density),
        dense_fraction=dense_fraction(density),
    )
