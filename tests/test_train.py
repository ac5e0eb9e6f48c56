"""The trainer: loss falls, sparsity responds to l1, fast step = autograd, resume = no interruption."""

import copy
from dataclasses import replace

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae.core.fast_step import fast_train_step, loss_and_grads
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.core.synthetic import make_sparse_dataset
from tutorial_sae.training.checkpoint import load_checkpoint
from tutorial_sae.training.resample import resample_dead_features
from tutorial_sae.training.trainer import (
    NonFiniteLossError,
    TrainConfig,
    train_sae,
    train_sae_on,
    train_step,
)

D_IN, D_SAE = 16, 48


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    return make_sparse_dataset(n_features=32, d=D_IN, sparsity=0.05, n_samples=4096, seed=0)


def toy_cfg(**changes) -> TrainConfig:
    base = TrainConfig(
        sae=SAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coeff=0.05, seed=0),
        n_steps=60,
        batch_size=128,
        lr=3e-3,
        log_every=10,
        checkpoint_every=10,
        dead_features="none",
        buffer_batches=4,
        model_batch_size=4,
        hook="blocks.0.mlp.hook_post",
        device="cpu",
        seed=0,
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def tiny_model():
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=8,
        d_head=4,
        n_heads=2,
        d_mlp=D_IN,
        d_vocab=40,
        n_ctx=16,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=0,
    )
    return HookedTransformer(cfg)


@pytest.mark.parametrize("dead", ["none", "ghost", "resample"])
def test_loss_falls_on_toy_sparse_data(toy, dead):
    sae = SAE(SAEConfig(D_IN, D_SAE, 0.05, seed=0))
    with torch.no_grad():
        sae.b_enc[:8] = -10.0  # eight features start dead, so ghost grads and resampling act
    cfg = toy_cfg(dead_features=dead, dead_window=5, resample_every=20, resample_density=1e-3)
    log = train_sae_on(toy.x, cfg, sae=sae, progress=False).log
    assert log.total[-1] < 0.5 * log.total[0]
    assert log.explained_variance[-1] > log.explained_variance[0]
    assert (max(log.ghost) > 0) == (dead == "ghost")
    assert (sum(log.resampled) > 0) == (dead == "resample")


def test_l1_zero_gives_denser_codes(toy):
    dense = train_sae_on(
        toy.x, toy_cfg(sae=SAEConfig(D_IN, D_SAE, 0.0, 0), lr=1e-2), progress=False
    )
    sparse = train_sae_on(
        toy.x, toy_cfg(sae=SAEConfig(D_IN, D_SAE, 1.0, 0), lr=1e-2), progress=False
    )
    assert dense.log.l0[-1] > 2 * sparse.log.l0[-1]


@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_decoder_rows_have_unit_norm_after_a_step(toy, backward):
    sae = train_sae_on(toy.x, toy_cfg(n_steps=2, backward=backward), progress=False).sae
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(D_SAE))


def test_same_seed_gives_the_same_run(toy):
    a = train_sae_on(toy.x, toy_cfg(n_steps=15), progress=False)
    b = train_sae_on(toy.x, toy_cfg(n_steps=15), progress=False)
    for p, q in zip(a.sae.parameters(), b.sae.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.log.mse == b.log.mse


@pytest.mark.parametrize("ghost", [False, True])
def test_hand_written_gradients_equal_autograd(ghost):
    gen = torch.Generator().manual_seed(1)
    sae = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coeff=0.3, seed=1))
    with torch.no_grad():
        sae.b_enc.normal_(generator=gen)
        sae.b_dec.normal_(generator=gen)
        sae.W_dec.mul_(1.5)  # norms != 1 exercise the decoder-norm term of the L1 gradient
    x = 2 * torch.randn(64, D_IN, generator=gen)
    dead = torch.arange(D_SAE) % 4 == 0 if ghost else None
    ref = copy.deepcopy(sae)
    expected = ref.loss(x, dead_mask=dead)
    expected.total.backward()
    got = loss_and_grads(sae, x, dead)
    assert (float(got.ghost) > 0) == ghost
    torch.testing.assert_close(got.total, expected.total.detach())
    for (name, p), q in zip(sae.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_fast_step_updates_like_the_plain_step():
    x = torch.randn(64, D_IN, generator=torch.Generator().manual_seed(2))
    dead = torch.arange(D_SAE) % 3 == 0
    saes = [SAE(SAEConfig(D_IN, D_SAE, 0.3, seed=3)) for _ in range(2)]
    opts = [torch.optim.Adam(s.parameters(), lr=1e-2, betas=(0.9, 0.99)) for s in saes]
    for _ in range(3):
        train_step(saes[0], opts[0], x, dead)
        fast_train_step(saes[1], opts[1], x, dead)
    for p, q in zip(saes[0].parameters(), saes[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_resumed_run_ends_with_the_same_weights(tiny_model, tmp_path):
    tokens = torch.randint(0, 40, (24, 16), generator=torch.Generator().manual_seed(0))
    cfg = toy_cfg(n_steps=12, dead_features="resample", resample_every=4, checkpoint_every=3)
    whole = train_sae(tiny_model, cfg, tokens, progress=False)
    # A run stopped at step 7 (e.g. killed just after that checkpoint) continues to step 12.
    train_sae(tiny_model, replace(cfg, n_steps=7), tokens, progress=False, checkpoint_dir=tmp_path)
    assert load_checkpoint(tmp_path).meta["step"] == 7
    resumed = train_sae(
        tiny_model, cfg, tokens, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    for p, q in zip(whole.sae.parameters(), resumed.sae.parameters(), strict=True):
        assert torch.equal(p, q)
    assert resumed.log.step[-1] == 12 and resumed.log.mse[-1] == whole.log.mse[-1]


def test_resume_refuses_a_different_config(toy, tmp_path):
    train_sae_on(toy.x, toy_cfg(n_steps=10), progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train_sae_on(toy.x, toy_cfg(lr=1e-2), progress=False, checkpoint_dir=tmp_path, resume=True)


def test_resume_refuses_a_foreign_checkpoint_by_name_before_training(toy, tmp_path):
    """A safetensors file in the checkpoint's place that is not this trainer's: a ValueError
    naming what is missing, not a KeyError from deep inside the restore."""
    from safetensors.torch import save_file

    from tutorial_sae.training.checkpoint import checkpoint_path

    train_sae_on(toy.x, toy_cfg(n_steps=10), progress=False, checkpoint_dir=tmp_path)
    path = checkpoint_path(tmp_path)
    save_file({"W": torch.zeros(2, 2)}, str(path), metadata={"meta": "{}"})
    with pytest.raises(ValueError, match="sae.W_enc|meta lacks"):
        train_sae_on(toy.x, toy_cfg(), progress=False, checkpoint_dir=tmp_path, resume=True)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    batches = [toy.x[i * 128 : (i + 1) * 128] for i in range(12)]
    cfg = toy_cfg(n_steps=12)
    sae = SAE(cfg.sae)

    def diverge():
        # A run that blows up: decoder weights so large the squared error overflows to inf
        # (inputs this large would be refused before the step, so the weights diverge instead).
        with torch.no_grad():
            sae.W_dec.mul_(1e30)

    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        train_sae_on(
            _Replay(batches, before_last=diverge),
            cfg,
            sae=sae,
            progress=False,
            checkpoint_dir=tmp_path,
        )
    kept = load_checkpoint(tmp_path)
    assert kept.meta["step"] == 10
    assert all(torch.isfinite(v).all() for k, v in kept.tensors.items() if k.startswith("sae."))


class _Replay:
    """A list of batches that can report its position, like `TensorBatches`."""

    def __init__(self, batches, before_last=None):
        self.batches, self.i, self.before_last = batches, 0, before_last

    def __iter__(self):
        return self

    def __next__(self):
        if self.i == len(self.batches):
            raise StopIteration
        self.i += 1
        if self.i == len(self.batches) and self.before_last is not None:
            self.before_last()
        return self.batches[self.i - 1]

    def state_dict(self):
        return {"i": torch.tensor(self.i)}

    def load_state_dict(self, state):
        self.i = int(state["i"])


def test_resampling_revives_dead_features(toy):
    sae = SAE(SAEConfig(D_IN, D_SAE, 0.05, seed=0))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    with torch.no_grad():
        sae.b_enc[:10] = -1e3  # these ten can never fire
    x = toy.x[:512]
    train_step(sae, opt, x, None)
    dead = (sae.encode(x) > 0).sum(0) == 0
    assert dead[:10].all()
    n = resample_dead_features(sae, opt, x, dead, torch.Generator().manual_seed(0))
    assert n == int(dead.sum())
    assert ((sae.encode(x) > 0).sum(0)[:10] > 0).all()
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(D_SAE))
    assert (opt.state[sae.W_dec]["exp_avg"][dead] == 0).all()


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="dead_features"):
        TrainConfig(dead_features="sometimes")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_steps": True}, "n_steps must be an int >= 1, got bool"),
        ({"batch_size": 2.0}, "batch_size must be an int >= 1, got float"),
        ({"lr": "1e-3"}, "lr must be a finite number in \\(0.0, inf\\], got str"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"resample_density": 1.5}, "resample_density must be a finite number in \\(0.0, 1.0\\]"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"betas": (0.9, 1.5)}, "betas\\[1\\] must be a finite number in \\[0.0, 1.0\\]"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"device": "gpu"}, "device must be None or a torch device name"),
        ({"resample_stop": True}, "resample_stop must be an int >= 0"),
        ({"sae": {"d_in": 4}}, "sae must be an SAEConfig"),
        ({"hook": ""}, "hook must be a hook name"),
    ],
)
def test_train_config_refuses_bad_fields_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"d_in": True}, "d_in must be an int >= 1, got bool"),
        ({"d_sae": 0}, "d_sae must be an int >= 1"),
        ({"l1_coeff": "1.0"}, "l1_coeff must be a finite number in \\[0.0, inf\\], got str"),
        ({"l1_coeff": -1.0}, "l1_coeff must be a finite number"),
        ({"seed": 1.5}, "seed must be an int >= 0, got float"),
    ],
)
def test_sae_config_refuses_bad_fields_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        SAEConfig(**change)


def test_a_checkpoint_path_that_is_a_file_is_refused_before_training(toy, tmp_path):
    a_file = tmp_path / "checkpoint"
    a_file.write_text("not a folder")
    with pytest.raises(ValueError, match="checkpoint_dir must be a folder"):
        train_sae_on(toy.x, toy_cfg(n_steps=5), progress=False, checkpoint_dir=a_file)
    with pytest.raises(ValueError, match="the SAE given has d_in="):
        train_sae_on(toy.x, toy_cfg(n_steps=5), sae=SAE(SAEConfig(d_in=3, d_sae=6)), progress=False)


@pytest.mark.parametrize("shape", [(1, 5), (64, 7), (200, 33), (4096, 96)])
def test_fire_counts_equal_count_nonzero(shape):
    from tutorial_sae.training.trainer import fire_counts

    gen = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(shape, generator=gen) - 1.0)
    f[:, 0] = 0.0  # a silent feature
    counts = fire_counts(f)
    assert counts.dtype == torch.long
    assert torch.equal(counts, torch.count_nonzero(f, dim=0))
    assert counts[0] == 0
    assert torch.equal(fire_counts(f.bfloat16()), torch.count_nonzero(f.bfloat16(), dim=0))
