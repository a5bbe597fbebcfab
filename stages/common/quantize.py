"""Post-training int8 quantization with PyTorch's own tools (FX graph mode, x86 / fbgemm kernels)."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

BACKEND = "x86"  # fbgemm's kernels, picked per CPU (AVX2 here)


def quantize_int8(model: nn.Module, calibration: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """An int8 copy of model: conv+BN+ReLU and linear+ReLU fused, activation ranges from `calibration` images."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = BACKEND
    float_model = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        # torch.ao.quantization warns on every call that it is moving to torchao (deprecations, observer
        # arguments); this FX API is what the pinned torch ships and what the benchmark measures.
        warnings.simplefilter("ignore")
        prepared = prepare_fx(float_model, get_default_qconfig_mapping(BACKEND), example_inputs=(calibration[:1],))
        with torch.inference_mode():
            for i in range(0, len(calibration), batch_size):
                prepared(calibration[i:i + batch_size])
        return convert_fx(prepared)

