"""The big CNN: documented size, forward pass, and checkpoints that refuse what they should."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bignn.io import CheckpointError, load_checkpoint, save_checkpoint
from bignn.model import build_model, count_params

# README and docs state this count for the default model (params.yaml: conv 32, 64; FC 1024, 1024).
DEFAULT_PARAMS = 4_291_050


def test_default_model_has_documented_parameter_count() -> None:
    model = build_model(conv_channels=[32, 64], hidden=[1024, 1024], dropout=0.3)
    by_hand = (1 * 32 * 9 + 2 * 32) + (32 * 64 * 9 + 2 * 64) + (3136 * 1024 + 1024) + (1024 * 1024 + 1024) \
        + (1024 * 10 + 10)
    assert count_params(model) == by_hand == DEFAULT_PARAMS


def test_forward_gives_logits_per_image() -> None:
    model = build_model(conv_channels=[4, 8, 8], hidden=[16], dropout=0.0).eval()
    out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10) and torch.isfinite(out).all()


def test_checkpoint_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    model = build_model(conv_channels=[4, 8], hidden=[16]).eval()
    save_checkpoint(tmp_path / "a.pth", model)
    save_checkpoint(tmp_path / "b.pth", model)
    # Same weights, different file names: same bytes, so DVC sees the same hash.
    assert (tmp_path / "a.pth").read_bytes() == (tmp_path / "b.pth").read_bytes()
    loaded, ckpt = load_checkpoint(tmp_path / "a.pth")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.eval()(x), model(x))
    assert ckpt["model_args"]["conv_channels"] == [4, 8]
    assert not list(tmp_path.glob(".*.tmp")), "temp files must not be left behind"


def test_foreign_truncated_and_mismatched_checkpoints_are_refused(tmp_path: Path) -> None:
    model = build_model(conv_channels=[4, 8], hidden=[16])
    save_checkpoint(tmp_path / "ok.pth", model)
    good = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cut.pth is not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")
    torch.save({"weights": model.state_dict()}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="needs keys 'model_args' and 'state_dict'"):
        load_checkpoint(tmp_path / "foreign.pth")
    bad_args = {"model_args": {**model.model_args, "hidden": [32]}, "state_dict": model.state_dict()}
    torch.save(bad_args, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError, match="do not fit the model"):
        load_checkpoint(tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pth")
