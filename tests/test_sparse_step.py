"""The sparse-aware step equals autograd; the dispatcher picks its branch; bf16 detection."""

from __future__ import annotations

import copy

import pytest
import torch

from tutorial_sae.core.cpu_features import auto_matmul_dtype, cpu_flags, native_bf16
from tutorial_sae.core.fast_step import StepLoss, fast_train_step, loss_and_grads, use_sparse
from tutorial_sae.core.sae import SAE, SAEConfig, train_step
from tutorial_sae.core.sparse_step import (
    BF16_DENSITY_THRESHOLD,
    DENSITY_THRESHOLD,
    SparseCode,
    batch_density,
)

D_IN, D_SAE, BATCH = 16, 96, 256
# fp32 against a float64 autograd reference: the largest error relative to the largest entry.
REL_TOL = 2e-6


def make_sae(shift: float, seed: int = 1) -> SAE:
    """An SAE whose encoder bias is moved by `shift`: negative gives a sparse code."""
    gen = torch.Generator().manual_seed(seed)
    sae = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coeff=0.3, seed=seed))
    with torch.no_grad():
        sae.b_enc.normal_(generator=gen).add_(shift)
        sae.b_dec.normal_(generator=gen)
        sae.W_dec.mul_(1.5)  # norms != 1 exercise the decoder-norm term of the L1 gradient
    return sae


def batch(seed: int = 2) -> torch.Tensor:
    return 2 * torch.randn(BATCH, D_IN, generator=torch.Generator().manual_seed(seed))


def assert_matches_float64_autograd(sae, x, dead, mode):
    ref = copy.deepcopy(sae).double()
    expected = ref.loss(x.double(), dead)
    expected.total.backward()
    got = loss_and_grads(sae, x, dead, sparse=mode)
    for part in ("total", "mse", "l1", "ghost"):
        want = getattr(expected, part).detach()
        err = abs(float(getattr(got, part)) - float(want))
        assert err <= REL_TOL * max(abs(float(want)), 1.0), part
    torch.testing.assert_close(got.feature_acts, expected.feature_acts.detach().float())
    for (name, p), q in zip(sae.named_parameters(), ref.parameters(), strict=True):
        err = float((p.grad.double() - q.grad).abs().max())
        assert err <= REL_TOL * float(q.grad.abs().max()), (name, err)
        assert p.grad.stride() == p.stride(), name  # fused Adam's layout
    return got


@pytest.mark.parametrize("shift", [-5.5, 0.5], ids=["sparse-code", "dense-code"])
@pytest.mark.parametrize("ghost", [False, True])
@pytest.mark.parametrize("mode", ["always", "never", "auto"])
def test_both_branches_equal_float64_autograd(shift, ghost, mode):
    sae, x = make_sae(shift), batch()
    dead = torch.arange(D_SAE) % 4 == 0 if ghost else None
    got = assert_matches_float64_autograd(sae, x, dead, mode)
    assert (float(got.ghost) > 0) == ghost
    density = float((got.feature_acts > 0).float().mean())
    assert (density < DENSITY_THRESHOLD) == (shift < 0)  # the two codes straddle the threshold


def test_dead_features_that_fire_and_an_all_dead_mask():
    sae, x = make_sae(-2.0), batch(3)
    fired = (sae.encode(x) > 0).any(0)
    dead = fired & (torch.arange(D_SAE) % 2 == 0)  # "dead" by the window yet firing now
    assert dead.sum() > 3
    assert_matches_float64_autograd(sae, x, dead, "always")
    assert_matches_float64_autograd(sae, x, torch.ones(D_SAE, dtype=torch.bool), "always")


def test_the_blocked_kernels_of_large_dictionaries(monkeypatch):
    """Blocks of 8 columns (the size 2048/16384 gets 64): d_in 20 ends in a partial block."""
    import tutorial_sae.core.sparse_step as sparse_step

    monkeypatch.setattr(sparse_step, "BLOCK_BYTES", 8 * 4 * D_SAE)
    assert sparse_step.block_width(D_SAE) == 8
    gen = torch.Generator().manual_seed(4)
    sae = SAE(SAEConfig(d_in=20, d_sae=D_SAE, l1_coeff=0.3, seed=4))
    with torch.no_grad():
        sae.b_enc.normal_(generator=gen).sub_(5.0)
        sae.b_dec.normal_(generator=gen)
    x = 2 * torch.randn(BATCH, 20, generator=gen)
    got = assert_matches_float64_autograd(sae, x, torch.arange(D_SAE) % 4 == 0, "always")
    assert 0 < float(got.fire_counts.sum()) < 0.1 * BATCH * D_SAE


def test_a_batch_where_no_feature_fires():
    sae, x = make_sae(-50.0), batch()
    got = assert_matches_float64_autograd(sae, x, torch.arange(D_SAE) % 3 == 0, "always")
    assert int(got.fire_counts.sum()) == 0 and float(got.l1) == 0.0


def test_sparse_training_follows_autograd_through_resampling():
    """Five steps with Adam, and between steps the kind of weight surgery resampling does."""
    from tutorial_sae.training.resample import resample_dead_features

    saes = [make_sae(-2.0, seed=5) for _ in range(2)]
    opts = [torch.optim.Adam(s.parameters(), lr=1e-2, betas=(0.9, 0.99)) for s in saes]
    dead = torch.arange(D_SAE) % 5 == 0
    for step in range(5):
        x = batch(10 + step)
        ref = train_step(saes[0], opts[0], x, dead)
        got = fast_train_step(saes[1], opts[1], x, dead, sparse="always")
        assert got.fire_counts is not None
        torch.testing.assert_close(got.total, ref.total.detach(), rtol=1e-5, atol=1e-6)
        if step in (1, 3):  # re-initialise dead rows in both, from the same draw
            for sae, opt in zip(saes, opts, strict=True):
                gen = torch.Generator().manual_seed(step)
                assert resample_dead_features(sae, opt, x, dead, gen) == int(dead.sum())
        for p, q in zip(saes[0].parameters(), saes[1].parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_the_dispatcher_picks_the_branch_by_density():
    x = batch()
    for shift, sparse_expected in ((-5.5, True), (0.5, False)):
        out = loss_and_grads(make_sae(shift), x)  # "auto" is the default
        assert isinstance(out, StepLoss)
        assert (out.fire_counts is not None) == sparse_expected
        if sparse_expected:
            torch.testing.assert_close(out.fire_counts, torch.count_nonzero(out.feature_acts, 0))
    f = torch.zeros(1000, 100)
    f[:, 0] = 1.0  # density 1%
    assert batch_density(f) == pytest.approx(0.01)
    assert use_sparse(f, "auto") and not use_sparse(f, "never")
    f[:, : int(100 * DENSITY_THRESHOLD) + 1] = 1.0
    assert not use_sparse(f, "auto") and use_sparse(f, "always")
    f[:, 1:] = 0.0
    f[:, 1 : int(100 * BF16_DENSITY_THRESHOLD) + 1] = 1.0  # just above bf16's threshold
    assert use_sparse(f, "auto") and not use_sparse(f, "auto", torch.bfloat16)
    assert not use_sparse(f.to("meta"), "auto")  # off the CPU "auto" stays dense (unmeasured)


@pytest.mark.parametrize("bad", ["sometimes", True, None])
def test_a_bad_sparse_mode_is_refused_before_any_work(bad):
    with pytest.raises(ValueError, match="sparse must be 'auto', 'always' or 'never'"):
        loss_and_grads(make_sae(0.0), batch(), sparse=bad)


def test_the_sparse_code_holds_both_orders():
    f = torch.tensor([[0.0, 2.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 4.0], [5.0, 0.0, 0.0]])
    code = SparseCode(f)
    torch.testing.assert_close(code.csr(code.values).to_dense(), f)
    torch.testing.assert_close(code.csr_t(code.values).to_dense(), f.T)
    torch.testing.assert_close(code.column_sums(code.values), f.sum(0))
    assert code.fire_counts().tolist() == [2, 2, 1]


def test_nonzeros_are_found_block_by_block():
    from tutorial_sae.core.sparse_step import _nonzero_of_nonnegative

    gen = torch.Generator().manual_seed(0)
    for n in (160, 157):  # whole blocks of 16, and not
        flat = torch.rand(n, generator=gen).sub_(0.9).clamp_min_(0)
        flat[3] = 1e-40  # a subnormal is nonzero
        assert torch.equal(_nonzero_of_nonnegative(flat), flat.nonzero().squeeze(1))
    assert _nonzero_of_nonnegative(torch.zeros(32)).numel() == 0


def test_bf16_matmuls_in_the_sparse_branch_stay_close():
    sae, x = make_sae(-2.0), batch()
    exact = loss_and_grads(copy.deepcopy(sae), x, sparse="never")
    got = loss_and_grads(sae, x, matmul_dtype=torch.bfloat16, sparse="always")
    torch.testing.assert_close(got.total, exact.total, rtol=3e-2, atol=1e-2)


FLAGS_AMX = "processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n"
FLAGS_AVX512_BF16 = "model name\t: Zen 4\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
FLAGS_NONE = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"


def test_native_bf16_reads_the_cpu_flags():
    assert cpu_flags(FLAGS_AMX) == {"fpu", "sse", "avx512f", "amx_bf16", "amx_tile"}
    assert native_bf16(FLAGS_AMX, system="Linux")
    assert native_bf16(FLAGS_AVX512_BF16, system="Linux")
    assert not native_bf16(FLAGS_NONE, system="Linux")
    assert not native_bf16("", system="Linux")
    # The flag must be a whole word on a flags line, not a substring or another field.
    assert not native_bf16("flags\t: avx512_bf16x\nbugs\t: amx_bf16\n", system="Linux")
    assert not native_bf16(FLAGS_AMX, system="Darwin") and not native_bf16(None, "Windows")
    with pytest.raises(TypeError, match="cpuinfo must be the text"):
        cpu_flags(b"flags: amx_bf16")


def test_auto_matmul_dtype_uses_bf16_only_where_native(monkeypatch):
    import tutorial_sae.core.cpu_features as cf

    assert auto_matmul_dtype("cuda") == torch.bfloat16
    for text, want in ((FLAGS_AMX, torch.bfloat16), (FLAGS_NONE, torch.float32)):
        monkeypatch.setattr(cf, "native_bf16", lambda text=text: cf.cpu_flags(text) >= {"amx_bf16"})
        assert auto_matmul_dtype("cpu") == want
    assert auto_matmul_dtype("meta") == torch.float32
