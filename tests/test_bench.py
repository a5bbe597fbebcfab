"""The benchmark on a tiny pipeline: every model form measured, ratios to dense, sparse kernels exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bignn import forms, paths
from bignn.config import Params
from bignn.io import atomic_write_bytes, save_checkpoint
from bignn.quantize import int8_bytes
from commands import bench
from stages import channel, combine, compress


def test_csr_linear_computes_what_the_dense_layer_does() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(300, 40)
    with torch.no_grad():
        layer.weight[torch.rand_like(layer.weight) < 0.9] = 0
    sparse = forms.CsrLinear(layer)
    for batch in (1, 7):
        x = torch.randn(batch, 300)
        assert torch.allclose(sparse(x), layer(x), atol=1e-5)
    assert sparse.weight.values().numel() == int(torch.count_nonzero(layer.weight))


def test_forward_flops_counts_conv_and_linear_layers() -> None:
    from bignn.model import build_model

    model = build_model([4], [8])  # conv 1->4 at 28x28, then 4*14*14 -> 8 -> 10
    assert bench.forward_flops(model) == 2 * 4 * 9 * 28 * 28 + 2 * 4 * 14 * 14 * 8 + 2 * 8 * 10


@pytest.fixture
def pipeline(pruned_params: Params) -> Params:
    atomic_write_bytes(paths.COMPRESSED_MODEL, compress.run(pruned_params)[0])
    model, _ = channel.run(pruned_params)
    save_checkpoint(paths.CHANNEL_MODEL, model)
    atomic_write_bytes(paths.CHANNEL_INT8_MODEL, int8_bytes(channel.int8_copy(pruned_params, model), model.model_args))
    atomic_write_bytes(paths.COMBINED_MODEL, combine.run(pruned_params)[0])
    return pruned_params


def test_bench_measures_every_form_against_dense(pipeline: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    # The peak from 512 x 512 products: the bench's 2048 x 2048 ones cost 2 s of CPU for the same kind of figure.
    peak = bench.gemm_peak_gflops
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda: peak(n=512, runs=5))
    result = bench.run(pipeline)
    rows = result["models"]
    assert set(rows) == set(bench.FORMS)
    assert rows["dense"]["speedup_b1"] == rows["dense"]["times_smaller_on_disk"] == 1.0
    for name, row in rows.items():
        assert row["latency_b1_ms"] > 0 and row["throughput_ips"] > 0 and row["checkpoint_bytes"] > 0, name
        assert 0 <= row["accuracy"] <= 100 and row["peak_mb"] >= row["weights_mb"] > 0, name
    # Same weights, other kernels: the same predictions.
    assert rows["pruned_csr"]["accuracy"] == rows["pruned"]["accuracy"]
    assert rows["compressed"]["checkpoint_bytes"] < rows["pruned"]["checkpoint_bytes"] / 3
    assert rows["dense_int8"]["checkpoint_bytes"] < rows["dense"]["checkpoint_bytes"] / 2
    assert rows["channel"]["checkpoint_bytes"] < rows["dense"]["checkpoint_bytes"]
    assert rows["combined"]["checkpoint_bytes"] < rows["channel"]["checkpoint_bytes"] / 3
    pipe = result["input_pipeline"]
    assert pipe["this_trainer_ips"] > 0 and pipe["torchvision_dataloader_ips"] > 0
    assert 0 < pipe["train_fraction_of_peak"] < 1.5 and pipe["gemm_peak_gflops"] > 1
    print(bench.table(rows))
