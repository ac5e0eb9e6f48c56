"""Device choice, seeding and atomic writes."""

import pytest
import torch

from tutorial_sae import get_device, set_seed
from tutorial_sae.paths import atomic_write_bytes


def test_get_device_returns_an_available_device():
    device = get_device()
    assert device.type in {"cuda", "mps", "cpu"}
    torch.zeros(1, device=device)


def test_set_seed_repeats_random_draws():
    set_seed(7)
    a = torch.randn(3)
    set_seed(7)
    torch.testing.assert_close(a, torch.randn(3))
    with pytest.raises(ValueError, match="seed must be an int"):
        set_seed("7")


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
