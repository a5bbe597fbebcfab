"""python -m commands filebytes: where a compressed file's bytes go."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bignn.compression import compress_model
from bignn.config import Params, replace
from bignn.model import build_model
from commands import filebytes


def _trained_like(seed: int = 0) -> torch.nn.Module:
    """A small model with batch-norm statistics and biases that are not their initial values."""
    torch.manual_seed(seed)
    model = build_model([4, 8], [16])
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t).abs() + 0.1 if "running_var" in name else torch.randn_like(t))
        model.classifier[1].weight[:, ::3] = 0
    return model.eval()


def test_the_parts_add_up_to_the_file(tiny_params: Params) -> None:
    params = replace(tiny_params, compress=replace(tiny_params.compress, coder="range", quantizer="kmeans", bits=4))
    model = _trained_like()
    data, _ = compress_model(params.compress, model, 10**6, 10**6)
    r = filebytes.report(data)
    assert r["bytes"] == len(data) == sum(r["parts"].values())
    # The header: the widths, bits and axes as varints, a float64 dropout; far below the old JSON's 166 B.
    assert r["header"]["model_args"] == model.model_args and r["parts"]["header"] < 32
    # Tables: one 16-entry float16 codebook per layer (2 conv, 2 linear).
    assert r["parts"]["tables"] == 4 * 16 * 2
    # Dense: every bias in float16, each batch norm as its shift alone (4 + 8 channels): the conv before it
    # carries its scale.
    biases = sum(m.bias.numel() for m in model.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None)
    assert r["parts"]["dense"] == 2 * (biases + 4 + 8)


def test_main_prints_every_part(tiny_params: Params, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = replace(tiny_params, compress=replace(tiny_params.compress, coder="range", quantizer="kmeans", bits=4))
    data, _ = compress_model(params.compress, _trained_like(1), 10**6, 10**6)
    (tmp_path / "m.bin").write_bytes(data)
    filebytes.main([str(tmp_path / "m.bin")])
    out = capsys.readouterr().out
    assert f"{len(data):,} bytes" in out and "4-bit kmeans" in out
    assert all(s in out for s in ("magic", "header", "positions", "values", "tables", "dense"))


def test_a_file_of_another_format_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"BIGNN-SPARSE-1\nnot range coded")
    with pytest.raises(ValueError, match=r"model.bin: not a range-coded model file"):
        filebytes.main([str(tmp_path / "model.bin")])
