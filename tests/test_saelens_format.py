"""Export to SAELens 6's folder format and import back: same tensors, same features, clear refusals."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tutorial_sae import load_sae
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.models.saelens import CFG_FILE, WEIGHTS_FILE, export_saelens, import_saelens


@pytest.fixture()
def exported(tmp_path):
    sae = load_sae("mini/run1")
    return sae, export_saelens(sae, tmp_path / "run1", "mini", context_size=128)


def test_the_folder_has_saelens_schema(exported):
    sae, folder = exported
    cfg = json.loads((folder / CFG_FILE).read_text())
    assert cfg["architecture"] == "standard" and cfg["apply_b_dec_to_input"] is True
    assert cfg["normalize_activations"] == "none" and cfg["dtype"] == "float32"
    assert (cfg["d_in"], cfg["d_sae"]) == (512, 4096)
    assert cfg["metadata"]["model_name"] == "mini"
    assert cfg["metadata"]["hook_name"] == "blocks.0.mlp.hook_post"
    state = load_file(folder / WEIGHTS_FILE)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "W_enc": (512, 4096),
        "b_enc": (4096,),
        "W_dec": (4096, 512),
        "b_dec": (512,),
    }


def test_a_round_trip_gives_the_same_sae(exported):
    sae, folder = exported
    back = import_saelens(folder)
    assert back.model_name == "mini" and back.hook_name == "blocks.0.mlp.hook_post"
    assert back.sae.cfg == sae.cfg
    for key in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back.sae, key), getattr(sae, key))
    x = torch.randn(16, 512, generator=torch.Generator().manual_seed(0)).abs()
    assert torch.equal(back.sae.encode(x), sae.encode(x))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"architecture": "jumprelu"}, "architecture = 'standard'"),
        ({"apply_b_dec_to_input": False}, "apply_b_dec_to_input = True"),
        ({"normalize_activations": "layer_norm"}, "normalize_activations = 'none'"),
        ({"d_sae": True}, "d_sae must be an int"),
    ],
)
def test_foreign_settings_are_refused_by_name(exported, change, message):
    _, folder = exported
    cfg = json.loads((folder / CFG_FILE).read_text())
    (folder / CFG_FILE).write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=message):
        import_saelens(folder)


def test_bad_weights_are_refused(tmp_path):
    sae = SAE(SAEConfig(d_in=4, d_sae=8))
    folder = export_saelens(sae, tmp_path / "s", "mini")
    state = load_file(folder / WEIGHTS_FILE)
    save_file({**state, "W_dec": torch.zeros(8, 5)}, folder / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="expected tensors"):
        import_saelens(folder)
    save_file({**state, "b_enc": torch.full((8,), float("nan"))}, folder / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="b_enc holds NaN"):
        import_saelens(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        import_saelens(folder)
    with pytest.raises(FileNotFoundError, match="cfg.json and sae_weights.safetensors"):
        import_saelens(tmp_path / "absent")
