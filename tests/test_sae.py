"""The SAE's forward, loss parts, decoder-norm invariants, ghost grads and save/load."""

import json

import pytest
import torch

from tutorial_sae import SAE, SAEConfig, ghost_grad_loss


def make_sae(d_in=8, d_sae=32, l1_coeff=0.5, seed=0):
    return SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=l1_coeff, seed=seed))


def test_forward_matches_the_formula():
    sae = make_sae()
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
    x = torch.randn(5, 8)
    f = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    torch.testing.assert_close(sae.encode(x), f)
    torch.testing.assert_close(sae(x), f @ sae.W_dec + sae.b_dec)
    assert (sae.encode(x) >= 0).all()


def test_loss_parts_add_up_and_follow_their_definitions():
    sae = make_sae(l1_coeff=0.3)
    x = torch.randn(16, 8)
    out = sae.loss(x)
    f = sae.encode(x)
    x_hat = sae.decode(f)
    torch.testing.assert_close(out.mse, (x_hat - x).pow(2).sum(-1).mean())
    torch.testing.assert_close(out.l1, 0.3 * (f * sae.W_dec.norm(dim=-1)).sum(-1).mean())
    torch.testing.assert_close(out.total, out.mse + out.l1)
    assert float(out.ghost) == 0.0


def test_decoder_starts_unit_norm_and_stays_so_after_a_step():
    sae = make_sae()
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(32))
    opt = torch.optim.Adam(sae.parameters(), lr=0.1)
    out = sae.loss(torch.randn(64, 8) * 3)
    out.total.backward()
    sae.remove_parallel_decoder_grad()
    opt.step()
    sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(32))


def test_projected_gradient_is_orthogonal_to_each_decoder_row():
    sae = make_sae()
    sae.loss(torch.randn(64, 8)).total.backward()
    assert sae.W_dec.grad.abs().sum() > 0
    sae.remove_parallel_decoder_grad()
    dots = (sae.W_dec.grad * sae.W_dec).sum(-1)
    assert dots.abs().max() < 1e-5


def test_ghost_term_only_with_dead_features_and_matches_mse_scale():
    sae = make_sae()
    x = torch.randn(32, 8)
    none_dead = sae.loss(x, dead_mask=torch.zeros(32, dtype=torch.bool))
    assert float(none_dead.ghost) == 0.0
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:5] = True
    out = sae.loss(x, dead_mask=dead)
    # The rescaling makes the ghost term's value equal to the main MSE (up to the epsilon).
    torch.testing.assert_close(out.ghost, out.mse, rtol=1e-3, atol=1e-4)
    out.ghost.backward()
    assert sae.W_enc.grad[:, :5].abs().sum() > 0, "dead features get a gradient"
    assert sae.W_enc.grad[:, 5:].abs().sum() == 0, "live features get none from the ghost term"
    assert sae.b_dec.grad is None or sae.b_dec.grad.abs().max() < 1e-6, "b_dec gets none either"


def test_ghost_grad_loss_direct_call_is_finite():
    x = torch.randn(4, 3)
    val = ghost_grad_loss(
        x,
        torch.zeros(4, 3),
        torch.randn(4, 6),
        torch.randn(6, 3),
        torch.ones(6, dtype=torch.bool),
        x.pow(2).sum(-1),
    )
    assert torch.isfinite(val)


def test_save_and_load_round_trip(tmp_path):
    sae = make_sae(seed=3)
    with torch.no_grad():
        sae.b_enc.uniform_()
    sae.save(tmp_path / "sae")
    loaded = SAE.load(tmp_path / "sae")
    assert loaded.cfg == sae.cfg
    x = torch.randn(4, 8)
    torch.testing.assert_close(loaded(x), sae(x))
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["d_sae"] == 32


def test_load_rejects_missing_or_mismatched_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="sae.safetensors"):
        SAE.load(tmp_path)
    make_sae().save(tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "cfg.json").read_text())
    cfg["d_sae"] = 16
    (tmp_path / "a" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="expected"):
        SAE.load(tmp_path / "a")
    (tmp_path / "a" / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid SAE config"):
        SAE.load(tmp_path / "a")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_in": 0}, "d_in must be an int >= 1"),
        ({"d_sae": -3}, "d_sae must be an int >= 1"),
        ({"l1_coeff": -1.0}, "l1_coeff must be a finite number in"),
        ({"l1_coeff": float("nan")}, "l1_coeff"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAEConfig(**kwargs)


def test_bad_inputs_are_rejected_with_what_was_expected():
    sae = make_sae()
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 8\].*got \(3, 7\)"):
        sae.encode(torch.randn(3, 7))
    with pytest.raises(ValueError, match="finite"):
        sae.loss(torch.tensor([[float("nan")] * 8]))
    with pytest.raises(ValueError, match="floating-point"):
        sae.encode(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[batch, 8\]"):
        sae.loss(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="dead_mask"):
        sae.loss(torch.randn(2, 8), dead_mask=torch.zeros(5, dtype=torch.bool))


def test_every_entry_point_refuses_the_same_bad_inputs_the_same_way():
    from tutorial_sae.core.fast_step import loss_and_grads
    from tutorial_sae.core.sae import ghost_grad_loss

    sae = SAE(SAEConfig(d_in=4, d_sae=8))
    x = torch.randn(3, 4)
    steps = {
        "loss": lambda x, mask=None: sae.loss(x, mask),
        "fast step": lambda x, mask=None: loss_and_grads(sae, x, mask),
    }
    for step in steps.values():
        with pytest.raises(ValueError, match=r"shape \[batch, 4\]"):
            step(torch.randn(2, 3, 4))
        with pytest.raises(ValueError, match="at least one row"):
            step(torch.randn(0, 4))
        with pytest.raises(ValueError, match="must be finite"):
            step(torch.full((2, 4), float("nan")))
        with pytest.raises(ValueError, match="floating-point"):
            step(torch.ones(2, 4, dtype=torch.int64))
        # An integer 0/1 mask would pick features 0 and 1 by index: refused, with the fix.
        with pytest.raises(ValueError, match="bool tensor of shape \\(8,\\).*comparison"):
            step(x, torch.tensor([0, 1, 0, 0, 0, 0, 0, 1]))
        with pytest.raises(ValueError, match="bool tensor of shape \\(8,\\)"):
            step(x, torch.zeros(7, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor"):
        ghost_grad_loss(x, x, torch.zeros(3, 8), sae.W_dec, torch.ones(8), torch.ones(3))


def test_float64_and_float16_inputs_are_cast_to_the_sae_dtype():
    from tutorial_sae.core.fast_step import loss_and_grads

    sae = SAE(SAEConfig(d_in=4, d_sae=8, seed=1))
    x = torch.randn(5, 4)
    reference = sae.loss(x).total
    for dtype in (torch.float64, torch.float16):
        cast = x.to(dtype).float()
        assert sae.encode(x.to(dtype)).dtype == torch.float32
        torch.testing.assert_close(sae.loss(x.to(dtype)).total, sae.loss(cast).total)
        torch.testing.assert_close(loss_and_grads(sae, x.to(dtype)).total, sae.loss(cast).total)
    assert torch.isfinite(reference)
