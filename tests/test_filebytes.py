"""python -m commands.filebytes: where a compressed file's bytes go, and the dense part stored otherwise."""

from __future__ import annotations

import torch

from commands import filebytes
from stages.common.config import Params, replace
from stages.common.model import build_model
from stages.methods.compression import compress_model


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


def test_the_parts_add_up_and_the_variants_are_measured(tiny_params: Params) -> None:
    params = replace(tiny_params, compress=replace(tiny_params.compress, coder="range", quantizer="kmeans", bits=4))
    data, _ = compress_model(params, _trained_like(), 10**6, 10**6)
    r = filebytes.report(data)
    stored = sum(v["stored"] for v in r["streams"].values())
    assert r["bytes"] == len(data) and len(data) - stored == len(b"BIGNN-SPARSE-2\n") + 8 * len(r["streams"])
    assert r["other"] == len(data) - sum(r["streams"][s]["stored"] for s in ("positions", "values", "counts",
                                                                              "tables"))
    v = r["variants"]
    # float16 halves the floats of the dense part, so the file shrinks; dropping the counters cannot grow it.
    assert v["float16, without the counters"] < v["without the batch-norm step counters"] <= r["bytes"] + 4
    tensors = filebytes.dense_tensors(data)
    assert {"features.1.running_var", "features.1.num_batches_tracked", "classifier.1.bias"} <= set(tensors)


def test_folding_batch_norm_gives_the_same_outputs() -> None:
    model = _trained_like(1)
    tensors = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith(".weight")
               or "features.1" in k or "features.5" in k}
    f = filebytes.folded(tensors)
    assert not any(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in f)
    bn = model.features[1]
    x = torch.randn(3, 4, 5, 5)
    expected = bn(x)
    got = x * torch.from_numpy(f["features.1.weight"])[:, None, None] + torch.from_numpy(f["features.1.bias"])[
        :, None, None]
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_file_of_another_format_is_refused_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    (tmp_path / "model.bin").write_bytes(b"BIGNN-SPARSE-1\nnot range coded")
    with pytest.raises(ValueError, match=r"model.bin: not a range-coded model file"):
        filebytes.main([str(tmp_path / "model.bin")])
