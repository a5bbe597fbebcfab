"""The compressed artifact: round trip, size, and refusal of foreign files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bignn import compression, forms, paths
from bignn.config import Params, replace
from bignn.data import load_split
from bignn.io import CheckpointError, load_checkpoint
from bignn.model import build_model, prunable
from bignn.training import predict
from stages import compress


@pytest.mark.parametrize("gaps", [[0, 1, 2, 3], [5], [0, 127, 128, 129, 300, 16384, 10**7]])
def test_gap_varints_round_trip(gaps: list[int]) -> None:
    positions = np.cumsum(np.array(gaps) + 1) - 1
    data = compression.encode_gaps(positions)
    decoded, end = compression.decode_gaps(memoryview(data), len(positions), 0)
    assert decoded.tolist() == positions.tolist() and end == len(data)


def test_quantize_rows_error_is_within_half_a_step() -> None:
    w = torch.randn(16, 40)
    q, scale = compression.quantize_rows(w, bits=8)
    assert np.abs(q).max() <= 127
    err = (w - torch.from_numpy(q.astype(np.float32)) * torch.from_numpy(scale)[:, None]).abs()
    assert torch.all(err <= torch.from_numpy(scale)[:, None] / 2 + 1e-6)


@pytest.fixture
def pruned(pruned_params: Params) -> Path:
    return paths.PRUNED_MODEL


def test_round_trip_keeps_predictions_and_zeros(tiny_params: Params, pruned: Path) -> None:
    data, report = compress.run(tiny_params)
    assert report["bytes"] == len(data) and report["pruned_checkpoint_bytes"] > 5 * len(data)
    original, _ = load_checkpoint(pruned)
    rebuilt = compression.decode(data)
    assert type(rebuilt) is type(original) and rebuilt.model_args == original.model_args
    for (name, a), b in zip(original.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if name.endswith("weight") and a.dim() > 1:
            assert torch.equal(a == 0, b == 0) or int((b != 0).sum()) < int((a != 0).sum()), name
            step = a.flatten(1).abs().amax(1) / 127  # int8: error at most half a step per channel
            assert torch.all((a - b).flatten(1).abs() <= step[:, None] / 2 + 1e-6), name
        else:
            assert torch.equal(a, b), name  # biases and batch-norm statistics are stored exactly
    test = load_split(tiny_params.data.root, train=False, limit=200, verify=False)
    p_orig, p_new = predict(original, test), predict(rebuilt, test)
    assert (p_orig.argmax(1) == p_new.argmax(1)).float().mean() >= 0.98
    assert torch.allclose(p_orig, p_new, atol=0.05 * float(p_orig.abs().max()))


def test_fewer_bits_make_a_smaller_file(tiny_params: Params, pruned: Path) -> None:
    sizes = [len(compress.run(replace(tiny_params, compress=replace(tiny_params.compress, bits=b)))[0])
             for b in (8, 4)]
    assert sizes[1] < sizes[0]


def test_load_refuses_a_foreign_or_damaged_file(tiny_params: Params, pruned: Path, tmp_path: Path) -> None:
    data, _ = compress.run(tiny_params)
    for name, blob in (("torch.bin", pruned.read_bytes()), ("cut.bin", data[:len(data) // 2])):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match=name):
            forms.load_model(tmp_path / name)
    with pytest.raises(CheckpointError, match="no such compressed model"):
        forms.load_model(tmp_path / "missing.bin")


def _range(params: Params, quantizer: str, bits: int) -> Params:
    return replace(params, compress=replace(params.compress, coder="range", quantizer=quantizer, bits=bits))


def _effective(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What inference applies, in float64: each conv weight times the per-channel scale weight / sqrt(var +
    eps) of the batch norm right after it, every other conv and linear weight, each batch norm's shift
    bias - mean * scale, and every other bias. Two models with the same effective tensors compute the same."""
    state = {k: v.double() for k, v in model.state_dict().items()}
    out = {}
    for prefix, seq in model.named_modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        kids = [(f"{prefix}.{n}", m) for n, m in seq.named_children()]
        for i, (name, m) in enumerate(kids):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                out[f"{name}.weight"] = state[f"{name}.weight"]
                if m.bias is not None:
                    out[f"{name}.bias"] = state[f"{name}.bias"]
            if isinstance(m, torch.nn.BatchNorm2d):
                scale = state[f"{name}.weight"] / torch.sqrt(state[f"{name}.running_var"] + m.eps)
                out[f"{name}.shift"] = state[f"{name}.bias"] - state[f"{name}.running_mean"] * scale
                conv = kids[i - 1][0] if i and isinstance(kids[i - 1][1], torch.nn.Conv2d) else None
                if conv is None:
                    out[f"{name}.scale"] = scale
                else:  # the range format multiplies the scale into the conv's weights
                    out[f"{conv}.weight"] = out[f"{conv}.weight"] * scale.view(-1, 1, 1, 1)
    return out


def _inference_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """b applies a's biases and batch-norm shifts (and scales, where no conv carries them) up to float16
    rounding."""
    for name in a:
        if not name.endswith(".weight"):
            assert torch.allclose(a[name], b[name], rtol=2e-3, atol=1e-6), name


def test_range_coded_uniform_decodes_to_what_the_lzma_file_does(tiny_params: Params, pruned: Path,
                                                                tmp_path: Path) -> None:
    """Same quantizer, another coder: the same zeros, the same effective weights (each conv's times its batch
    norm's scale) up to the float16 row scales, the same biases and batch-norm shifts up to float16; the parts
    add up to the file."""
    lzma_data, _ = compress.run(tiny_params)
    data, report = compress.run(_range(tiny_params, "uniform", 8))
    assert data.startswith(compression.RANGE_MAGIC)
    (tmp_path / "m.bin").write_bytes(data)
    lzma_model = compression.decode(lzma_data)
    a, b = _effective(lzma_model), _effective(forms.load_model(tmp_path / "m.bin"))
    for name, _ in prunable(lzma_model):
        w, v = a[f"{name}.weight"], b[f"{name}.weight"]
        # A scale below float16's normal range would make the tables float32: these are not.
        assert torch.equal(w == 0, v == 0) and torch.allclose(w, v, rtol=1e-3, atol=0), name
    _inference_equal(a, b)
    parts = sum(report[f"{k}_bits_per_nonzero"] for k in ("positions", "values", "other"))
    assert parts == pytest.approx(report["bits_per_nonzero"])
    assert report["bits_per_nonzero"] == pytest.approx(8 * len(data) / report["nonzero_weights"])


def test_kmeans_codebook_keeps_the_mask_and_shares_values(tiny_params: Params, pruned: Path) -> None:
    data, report = compress.run(_range(tiny_params, "kmeans", 3))
    model = load_checkpoint(pruned)[0]
    rebuilt = compression.decode_range(data)
    original, decoded = _effective(model), _effective(rebuilt)
    for name, _ in prunable(model):
        a, b = original[f"{name}.weight"], decoded[f"{name}.weight"]
        assert torch.equal(a == 0, b == 0), name
        assert len(torch.unique(dict(rebuilt.named_modules())[name].weight.detach())) <= 8 + 1, name
        assert float((a - b).abs().max()) < float(a.abs().max()) / 2, name
    _inference_equal(original, decoded)
    # At most 3 bits an index (range-coded with the histogram), plus 8 float16 centroids a layer and its
    # histogram in the stream, 7 counts of at most log2(nonzero + 1) bits.
    nonzero, layers = report["nonzero_weights"], 5
    bound = 3.02 * nonzero + layers * (8 * 16 + 7 * math.log2(nonzero + 1)) + 64
    assert report["values_bits_per_nonzero"] * nonzero <= bound


def test_tables_too_small_for_float16_are_stored_in_float32() -> None:
    """Row scales below float16's normal range would lose precision: the file's tables become float32, and the
    weights come back as exactly as at normal magnitudes."""
    torch.manual_seed(0)
    model = build_model([4, 8], [16]).eval()
    with torch.no_grad():
        for _, m in prunable(model):
            m.weight.mul_(1e-4).masked_fill_(torch.rand_like(m.weight) < 0.5, 0.0)
    data, _ = compression.encode_range(model, 8, "uniform")
    assert compression.read_range_parts(data)[0]["tables"] == "f4"
    rebuilt = compression.decode_range(data)
    for name, m in prunable(model):
        w, v = m.weight, dict(rebuilt.named_modules())[name].weight
        step = w.flatten(1).abs().amax(1) / 127
        assert torch.all((w - v).flatten(1).abs() <= step[:, None] / 2 * 1.001 + 1e-12), name
    normal, _ = compression.encode_range(build_model([4, 8], [16]), 8, "uniform")
    assert compression.read_range_parts(normal)[0]["tables"] == "f2"


def test_a_file_of_another_format_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "old.bin").write_bytes(b"BIGNN-SPARSE-2\n" + bytes(64))
    with pytest.raises(CheckpointError, match=r"old.bin is not a readable compressed model"):
        forms.load_model(tmp_path / "old.bin")


@pytest.mark.parametrize("version", [3, 4])
def test_a_file_of_a_previous_range_format_is_refused_with_what_to_run(tmp_path: Path, version: int) -> None:
    """BIGNN-SPARSE-3 built its gap models with numpy's power, whose last bit depends on the CPU; SPARSE-4 kept
    counts and histograms in an lzma container. Neither is decoded by this version (that could give other
    weights without an error)."""
    (tmp_path / "old.bin").write_bytes(f"BIGNN-SPARSE-{version}\n".encode() + bytes(64))
    with pytest.raises(CheckpointError, match=rf"old.bin .*format BIGNN-SPARSE-{version} .*run `dvc repro`"):
        forms.load_model(tmp_path / "old.bin")


def test_every_cut_or_padded_range_file_is_refused() -> None:
    """No checksum, but no slack either: each part's length follows from the header, so a file cut anywhere or
    with a byte more is an error, never a model."""
    torch.manual_seed(0)
    model = build_model([4, 8], [16]).eval()
    with torch.no_grad():
        for _, m in prunable(model):
            m.weight.masked_fill_(torch.rand_like(m.weight) < 0.7, 0.0)
    data, _ = compression.encode_range(model, 4, "kmeans")
    for bad in [*(data[:n] for n in range(len(compression.RANGE_MAGIC), len(data), 5)), data + b"\0"]:
        with pytest.raises(compression.DECODE_ERRORS):
            compression.decode_file(bad)


def test_damaged_range_file_is_refused(tiny_params: Params, pruned: Path, tmp_path: Path) -> None:
    data, _ = compress.run(_range(tiny_params, "kmeans", 4))
    (tmp_path / "cut.bin").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.bin"):
        forms.load_model(tmp_path / "cut.bin")


def test_batch_norm_scales_ride_in_the_conv_weights() -> None:
    """Random batch-norm statistics, negative scales among them: the decoded model's batch norms scale by 1,
    its convs carry the scales, and it computes what the model did (8-bit rows: within a few percent)."""
    torch.manual_seed(1)
    model = build_model([4, 8], [16]).eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if "running_var" in name else torch.randn_like(t))
    data, parts = compression.encode_range(model, 8, "uniform")
    rebuilt = compression.decode_range(data).eval()
    norms = [m for m in rebuilt.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 2 and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        y, z = model(x), rebuilt(x)
    assert float((y - z).abs().max()) < 0.05 * float(y.abs().max())
    # The dense part: each batch norm's shift (4 + 8) and the linear biases (16 + 10), two bytes each.
    assert len(compression.range_parts(model, 8, "uniform")["dense"]) == 2 * (4 + 8 + 16 + 10)
