"""Post-training int8 quantization with PyTorch's own tools (FX graph mode, x86 / fbgemm kernels), and the
int8 checkpoint: the quantized state dict beside the float model's shape, rebuilt without calibration."""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any

import torch
from torch import nn

from bignn.io import CheckpointError
from bignn.model import BigCNN, build_model, relu_before_pool

# fbgemm's kernels on every CPU. PyTorch's "x86" engine (the same qconfig) packs the int8 convolutions for oneDNN
# instead where the CPU has AVX-512 VNNI, and the file then holds other bytes than on a CPU without it (AMD Zen 3
# vs an AVX-512 Intel Xeon: tests/test_portable_bytes.py).
BACKEND = "fbgemm"
# The checkpoint's "format" key: a file without it is a float checkpoint.
INT8_FORMAT = "torch.ao-fx-int8-x86"


class Int8Model(nn.Module):
    """An int8 graph that runs with torch's deterministic-algorithms check off for its own forward pass.

    The stages turn that check on (runtime.setup), and it refuses fbgemm's resize of an int8 output
    tensor, which has no "deterministic" twin. The int8 kernels give the same bits run after run (tested)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = torch.get_deterministic_debug_mode()  # the check (error, warn or off) as runtime.setup left it
        torch.set_deterministic_debug_mode("default")
        try:
            return self.graph(x)
        finally:
            torch.set_deterministic_debug_mode(mode)


def _convert(float_model: BigCNN, calibration: torch.Tensor, batch_size: int) -> Int8Model:
    torch.backends.quantized.engine = BACKEND
    # FX tracing otherwise records and symbolizes a Python stack for every node: ~1.4 s per conversion, for
    # debugging text that no saved byte holds.
    emit, torch.fx.config.do_not_emit_stack_traces = torch.fx.config.do_not_emit_stack_traces, True
    try:
        return _traced(float_model, calibration, batch_size)
    finally:
        torch.fx.config.do_not_emit_stack_traces = emit


def _traced(float_model: BigCNN, calibration: torch.Tensor, batch_size: int) -> Int8Model:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        # torch.ao.quantization warns on every call that it is moving to torchao (deprecations, observer
        # arguments); this FX API is what the pinned torch ships (docs/structured-int8.md).
        warnings.simplefilter("ignore")
        prepared = prepare_fx(relu_before_pool(float_model).eval(), get_default_qconfig_mapping(BACKEND),
                              example_inputs=(calibration[:1],))
        with torch.inference_mode():
            for i in range(0, len(calibration), batch_size):
                prepared(calibration[i:i + batch_size])
        return Int8Model(convert_fx(prepared))


def quantize_int8(model: BigCNN, calibration: torch.Tensor, batch_size: int = 256) -> Int8Model:
    """An int8 copy of model: conv+BN+ReLU and linear+ReLU fused, activation ranges from `calibration` images."""
    return _convert(copy.deepcopy(model), calibration, batch_size)


def int8_bytes(model: Int8Model, model_args: dict[str, Any]) -> bytes:
    """The int8 model's state dict (int8 weights with their scales, activation scales) and the float model's
    constructor arguments; bytes built in memory, so equal models give equal files."""
    buf = io.BytesIO()
    torch.save({"format": INT8_FORMAT, "model_args": model_args, "state_dict": model.graph.state_dict()}, buf)
    return buf.getvalue()


def int8_from_checkpoint(ckpt: dict[str, Any], path: Any) -> Int8Model:
    """Rebuild an int8 model from a checkpoint read from `path`: the same graph from the float shape (one
    dummy calibration image), then the stored scales and weights over it."""
    if ckpt.get("format") != INT8_FORMAT:
        raise CheckpointError(f"{path} holds a model of format {ckpt.get('format')!r}; this pipeline reads "
                              f"{INT8_FORMAT!r}")
    try:
        model = _convert(build_model(**ckpt["model_args"]), torch.zeros(1, 1, 28, 28), 1)
        model.graph.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: int8 weights do not fit the model in model_args: "
                              f"{str(exc).splitlines()[0]}") from None
    return model
