"""Activations stop at the hook, match a full cached forward, and stream shuffled."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae import collect_activations, run_to_hook, stream_activations


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        d_head=8,
        n_heads=2,
        d_mlp=64,
        d_vocab=50,
        n_ctx=12,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
    )
    return HookedTransformer(cfg)


def test_collected_activations_equal_the_cached_forward(tiny_model):
    tokens = torch.randint(0, 50, (5, 12))
    _, cache = tiny_model.run_with_cache(tokens)
    acts = collect_activations(tiny_model, tokens, batch_size=2, progress=False)
    assert acts.shape == (5, 12, 64)
    torch.testing.assert_close(acts, cache["blocks.0.mlp.hook_post"])


def test_forward_stops_at_the_hook(tiny_model):
    calls = []
    handle = tiny_model.unembed.register_forward_hook(lambda *a: calls.append(1))
    try:
        run_to_hook(tiny_model, torch.randint(0, 50, (2, 12)))
    finally:
        handle.remove()
    assert calls == [], "the unembedding never ran"
    assert not tiny_model.hook_dict["blocks.0.mlp.hook_post"].fwd_hooks


def test_stream_yields_shuffled_batches_from_every_sequence(tiny_model):
    tokens = torch.randint(0, 50, (40, 12))
    stream = stream_activations(
        tiny_model, tokens, batch_size=32, buffer_tokens=128, model_batch_size=4, seed=0
    )
    batches = [next(stream) for _ in range(20)]
    assert all(b.shape == (32, 64) for b in batches)
    all_acts = collect_activations(tiny_model, tokens, progress=False).reshape(-1, 64)
    first = batches[0]
    # Every streamed row is a real activation of some token.
    dists = torch.cdist(first, all_acts, compute_mode="donot_use_mm_for_euclid_dist")
    assert dists.min(dim=1).values.max() < 1e-4
    # Shuffled: the first batch is not 32 consecutive positions of the same sequences.
    rows = dists.argmin(dim=1)
    assert len(set((rows // 12).tolist())) > 3


def test_bad_tokens_and_hooks(tiny_model):
    with pytest.raises(ValueError, match=r"integer tensor of shape \[batch, pos\]"):
        run_to_hook(tiny_model, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="hook must be one of"):
        run_to_hook(tiny_model, torch.zeros(1, 4, dtype=torch.long), hook="blocks.9.nope")
    with pytest.raises(ValueError, match="buffer_tokens"):
        next(
            stream_activations(
                tiny_model, torch.zeros(2, 4, dtype=torch.long), batch_size=64, buffer_tokens=64
            )
        )


def test_token_ids_and_lengths_are_checked_against_the_model(tiny_model):
    model = tiny_model
    from tutorial_sae import run_to_hook

    too_high = torch.full((2, 4), model.cfg.d_vocab, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"token ids must be in \[0, {model.cfg.d_vocab}\)"):
        run_to_hook(model, too_high)
    with pytest.raises(ValueError, match="token ids must be in"):
        run_to_hook(model, torch.full((1, 3), -1, dtype=torch.long))
    too_long = torch.zeros((1, model.cfg.n_ctx + 1), dtype=torch.long)
    with pytest.raises(ValueError, match=f"at most {model.cfg.n_ctx} tokens"):
        run_to_hook(model, too_long)


def _old_stream_batches(model, tokens, batch_size, buffer_tokens, model_batch_size, seed, n):
    """The stream as first written (concatenate the parts, then shuffle): the reference order."""
    gen = torch.Generator().manual_seed(seed)
    order, position, buffer, out = torch.randperm(len(tokens), generator=gen), 0, None, []
    buffer = torch.empty(0)
    for _ in range(n):
        if len(buffer) < buffer_tokens // 2 + batch_size:
            parts, m = [buffer], len(buffer)
            while m < buffer_tokens:
                if position >= len(order):
                    order, position = torch.randperm(len(tokens), generator=gen), 0
                rows = order[position : position + model_batch_size]
                position += len(rows)
                act = run_to_hook(model, tokens[rows])
                parts.append(act.reshape(-1, act.shape[-1]).float())
                m += len(parts[-1])
            buffer = torch.cat([p for p in parts if p.numel()])
            buffer = buffer[torch.randperm(len(buffer), generator=gen)]
        out.append(buffer[:batch_size])
        buffer = buffer[batch_size:]
    return out


def test_stream_order_is_the_original_concatenate_then_shuffle(tiny_model):
    # the staging buffer replaced torch.cat: same rows, same shuffle, so seeded runs are unchanged
    tokens = torch.randint(0, 50, (30, 12), generator=torch.Generator().manual_seed(3))
    args = dict(batch_size=24, buffer_tokens=100, model_batch_size=5, seed=7)
    stream = stream_activations(tiny_model, tokens, **args)
    got = [next(stream) for _ in range(40)]  # several refills and two passes over the rows
    want = _old_stream_batches(tiny_model, tokens, n=40, **args)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_stream_frees_the_old_buffer_at_a_refill(tiny_model):
    stream = stream_activations(
        tiny_model, torch.randint(0, 50, (40, 12)), batch_size=32, buffer_tokens=128, seed=0
    )
    first = next(stream)
    kept = first.clone()
    for _ in range(6):  # refills happen in between
        next(stream)
    assert torch.equal(first, kept), "a batch handed out is never overwritten"
    # between refills the stream holds one buffer: its rows sit in one tensor of that size
    assert stream.buffer.untyped_storage().nbytes() <= (128 + 32 * 12) * 64 * 4
