"""Broken checkpoints and weight files (issue 14): every one is refused with a ValueError (or
FileNotFoundError) that names the file and says what is wrong; none is unpickled."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save

from tutorial_sae.analysis.neighbourhoods import load_projections
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.models import saelens
from tutorial_sae.training.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    load_checkpoint,
    load_optimizer_tensors,
    save_checkpoint,
)
from tutorial_sae.utils import read_json_object, read_safetensors

NAN = float("nan")


def _sae_tensors(d_in: int = 4, d_sae: int = 6, **changes) -> dict[str, torch.Tensor]:
    tensors = {
        "W_enc": torch.rand(d_in, d_sae),
        "b_enc": torch.rand(d_sae),
        "W_dec": torch.rand(d_sae, d_in),
        "b_dec": torch.rand(d_in),
    }
    return {k: v for k, v in {**tensors, **changes}.items() if v is not None}


GOOD = save(_sae_tensors(), metadata={"meta": json.dumps({"step": 3})})
SHAPES = {k: tuple(v.shape) for k, v in _sae_tensors().items()}

# (case, file bytes or "DIR", expected tensor shapes, words the error must contain)
WEIGHT_FILES = [
    ("empty", b"", SHAPES, ["0 bytes", "empty"]),
    ("truncated", GOOD[: len(GOOD) // 2], SHAPES, ["truncated"]),
    ("garbage", b"\xff" * 64, SHAPES, ["not a safetensors"]),
    ("pickle", pickle.dumps({"W_enc": [1.0]}), SHAPES, ["pickle"]),
    ("torch.save zip", b"PK\x03\x04" + b"\x00" * 60, SHAPES, ["pickle"]),
    ("a folder", "DIR", SHAPES, ["folder"]),
    ("missing key", save(_sae_tensors(W_dec=None)), SHAPES, ["missing ['W_dec']"]),
    ("extra key", save(_sae_tensors(extra=torch.rand(2))), SHAPES, ["unexpected ['extra']"]),
    ("wrong shape", save(_sae_tensors(W_enc=torch.rand(6, 4))), SHAPES, ["W_enc", "(4, 6)"]),
    ("NaN weights", save(_sae_tensors(b_dec=torch.full((4,), NAN))), SHAPES, ["b_dec", "NaN"]),
    (
        "inf weights",
        save(_sae_tensors(W_dec=torch.full((6, 4), float("inf")))),
        SHAPES,
        ["W_dec", "inf"],
    ),  # fmt: skip
    (
        "int weights",
        save(_sae_tensors(b_enc=torch.ones(6, dtype=torch.long))),
        SHAPES,
        ["b_enc", "int64"],
    ),  # fmt: skip
]


def _write(tmp_path, name: str, data) -> object:
    path = tmp_path / name
    if data == "DIR":
        path.mkdir()
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", WEIGHT_FILES, ids=[c[0] for c in WEIGHT_FILES])
def test_read_safetensors_names_the_file_and_the_problem(tmp_path, case):
    _, data, shapes, words = case
    path = _write(tmp_path, "weights.safetensors", data)
    with pytest.raises(ValueError) as err:
        read_safetensors(path, shapes)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value), err.value


def test_read_safetensors_returns_good_files_unchanged(tmp_path):
    tensors = _sae_tensors()
    path = tmp_path / "w.safetensors"
    path.write_bytes(save(tensors, metadata={"k": "v"}))
    got, meta = read_safetensors(path, SHAPES)
    assert meta == {"k": "v"} and all(torch.equal(got[k], v) for k, v in tensors.items())
    with pytest.raises(FileNotFoundError, match="no file at"):
        read_safetensors(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", ["not a UTF-8 JSON file"]),
        (b"{oops", ["not a UTF-8 JSON file"]),
        (b"\xff\xfe\x00", ["not a UTF-8 JSON file"]),
        (b"[1, 2]", ["JSON object", "list"]),
        (b"null", ["JSON object", "NoneType"]),
    ],
)
def test_read_json_object_names_the_file_and_the_problem(tmp_path, data, words):
    path = _write(tmp_path, "cfg.json", data)
    with pytest.raises(ValueError) as err:
        read_json_object(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words)


# --- training checkpoints (resume) -------------------------------------------------------------
def _checkpoint(tmp_path, data) -> object:
    _write(tmp_path, CHECKPOINT_FILE, data)
    return tmp_path


HALVES = torch.tensor([0.25, 0.5])


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", ["empty"]),
        (GOOD[:100], ["truncated"]),
        (pickle.dumps({"step": 1}), ["pickle"]),
        ("DIR", ["folder"]),
        (save({"a": HALVES}), ["no JSON 'meta'"]),
        (save({"a": HALVES}, metadata={"meta": "{"}), ["no JSON 'meta'"]),
        (save({"a": HALVES}, metadata={"meta": "[1]"}), ["JSON object", "list"]),
        (save({"a": torch.full((2,), NAN)}, metadata={"meta": "{}"}), ["a holds NaN"]),
    ],
    # named, not shown byte for byte: pytest-xdist's workers must collect the same test ids
    ids=[
        "empty",
        "truncated",
        "pickle",
        "folder",
        "no-meta",
        "meta-not-json",
        "meta-a-list",
        "nan",
    ],  # fmt: skip
)
def test_broken_checkpoints_are_refused_by_name(tmp_path, data, words):
    folder = _checkpoint(tmp_path, data)
    with pytest.raises(ValueError) as err:
        load_checkpoint(folder)
    assert CHECKPOINT_FILE in str(err.value) and all(w in str(err.value) for w in words)


def test_checkpoint_layout_is_checked_when_the_caller_states_it(tmp_path):
    save_checkpoint(tmp_path, Checkpoint({"sae.W_enc": torch.rand(3, 3)}, {"step": 1}))
    with pytest.raises(ValueError, match=r"missing \['sae.b_enc'\]"):
        load_checkpoint(tmp_path, expected={"sae.W_enc": (3, 3), "sae.b_enc": (3,)})
    with pytest.raises(ValueError, match=r"sae.W_enc.*\(4, 4\)"):
        load_checkpoint(tmp_path, expected={"sae.W_enc": (4, 4)})
    with pytest.raises(ValueError, match=r"meta lacks \['cfg', 'log'\]"):
        load_checkpoint(tmp_path, meta_keys=("step", "cfg", "log"))
    got = load_checkpoint(tmp_path, expected={"sae.W_enc": (3, 3)}, meta_keys=("step",))
    assert got.meta == {"step": 1} and got.tensors["sae.W_enc"].shape == (3, 3)


def test_no_checkpoint_yet_is_none_but_a_file_for_a_folder_is_refused(tmp_path):
    assert load_checkpoint(tmp_path / "new_run") is None
    assert load_checkpoint(tmp_path) is None
    file = _write(tmp_path, "not_a_folder", b"x")
    with pytest.raises(ValueError, match="must be a folder, got the file"):
        load_checkpoint(file)


def test_optimizer_state_of_another_shape_is_refused_before_loading():
    param = torch.nn.Parameter(torch.rand(3, 2))
    optimizer = torch.optim.Adam([param])
    with pytest.raises(ValueError, match=r"optim.0.exp_avg has shape \(2, 2\).*\(3, 2\)"):
        load_optimizer_tensors(optimizer, {"optim.0.exp_avg": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="parameter 5, the optimiser has 1"):
        load_optimizer_tensors(optimizer, {"optim.5.exp_avg": torch.zeros(3, 2)})


# --- SAELens folders -------------------------------------------------------------------------
def _saelens_folder(tmp_path, weights=None, cfg=None):
    sae = SAE(SAEConfig(d_in=4, d_sae=6, l1_coeff=1.0))
    saelens.export_saelens(sae, tmp_path, "mini")
    if weights is not None:
        target = tmp_path / saelens.WEIGHTS_FILE
        target.unlink()
        _write(tmp_path, saelens.WEIGHTS_FILE, weights)
    if cfg is not None:
        (tmp_path / saelens.CFG_FILE).write_bytes(cfg)
    return tmp_path


@pytest.mark.parametrize("case", WEIGHT_FILES[:-4] + WEIGHT_FILES[-3:], ids=lambda c: c[0])
def test_saelens_weights_are_refused_by_file_and_problem(tmp_path, case):
    name, data, _, words = case
    if name == "extra key":  # SAELens folders may hold buffers of their own: ignored
        assert saelens.import_saelens(_saelens_folder(tmp_path, data)).sae.cfg.d_sae == 6
        return
    with pytest.raises(ValueError) as err:
        saelens.import_saelens(_saelens_folder(tmp_path, data))
    assert saelens.WEIGHTS_FILE in str(err.value)
    for word in words:
        assert word in str(err.value), err.value


@pytest.mark.parametrize(
    "cfg, words",
    [
        (b"\xff\xfe", ["not a UTF-8 JSON file"]),
        (b"[]", ["JSON object"]),
        (
            json.dumps(
                {
                    "architecture": "standard",
                    "apply_b_dec_to_input": True,
                    "normalize_activations": "none",
                    "d_in": "4",
                    "d_sae": 6,
                }
            ).encode(),
            ["d_in must be an int"],
        ),  # fmt: skip
        (
            json.dumps(
                {
                    "architecture": "standard",
                    "apply_b_dec_to_input": True,
                    "normalize_activations": "none",
                    "d_in": 4,
                    "d_sae": 6,
                    "metadata": {"model_name": 3},
                }
            ).encode(),
            ["metadata.model_name"],
        ),  # fmt: skip
    ],
)
def test_saelens_configs_are_refused_by_file_and_field(tmp_path, cfg, words):
    with pytest.raises(ValueError) as err:
        saelens.import_saelens(_saelens_folder(tmp_path, cfg=cfg))
    assert saelens.CFG_FILE in str(err.value) and all(w in str(err.value) for w in words)


def test_saelens_export_refuses_a_file_path_and_a_non_finite_sae(tmp_path):
    sae = SAE(SAEConfig(d_in=4, d_sae=6, l1_coeff=1.0))
    with pytest.raises(ValueError, match="got the file"):
        saelens.export_saelens(sae, _write(tmp_path, "f", b"x"), "mini")
    with torch.no_grad():
        sae.b_dec[0] = NAN
    with pytest.raises(ValueError, match="sae.b_dec must be finite"):
        saelens.export_saelens(sae, tmp_path / "out", "mini")
    assert not (tmp_path / "out").exists()


# --- precomputed projections (chapter 4) -------------------------------------------------------
@pytest.mark.parametrize(
    "data, words",
    [
        ("DIR", ["must be a file"]),
        (b"\x00\xff", ["not a UTF-8 JSON file"]),
        (b"[1]", ["JSON object"]),
    ],
)
def test_broken_projection_files_are_refused(tmp_path, data, words):
    path = _write(tmp_path, "neighbourhoods.json", data)
    sae = SAE(SAEConfig(d_in=4, d_sae=6, l1_coeff=1.0))
    with pytest.raises(ValueError) as err:
        load_projections(sae, path)
    assert all(w in str(err.value) for w in words), err.value
    assert load_projections(sae, tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        (b"", "empty"),
        (pickle.dumps(_sae_tensors()), "pickle|truncated"),
        (save(_sae_tensors(W_enc=torch.full((4, 6), NAN))), "NaN|finite"),
        (save(_sae_tensors(b_dec=None)), "b_dec"),
    ],
)
def test_sae_load_refuses_broken_weights_by_file(tmp_path, weights, words):
    SAE(SAEConfig(d_in=4, d_sae=6, l1_coeff=1.0)).save(tmp_path)
    (tmp_path / "sae.safetensors").write_bytes(weights)
    with pytest.raises(ValueError, match=words) as err:
        SAE.load(tmp_path)
    assert "sae.safetensors" in str(err.value)


def test_fact_model_config_without_its_keys_is_refused_by_name(tmp_path):
    import shutil

    from tutorial_sae.models.facts import facts_dir, load_fact_model

    for name in ("model.safetensors", "config.json"):
        shutil.copy(facts_dir() / name, tmp_path / name)
    meta = json.loads((tmp_path / "config.json").read_text())
    del meta["world"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="config.json.*world"):
        load_fact_model(tmp_path)
