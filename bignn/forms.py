"""Every form of a model this pipeline writes or measures, loaded one way: a float checkpoint (dense, pruned,
channel-pruned, students), an int8 checkpoint, the compressed .bin; and the CSR form of a pruned model."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from bignn.compression import DECODE_ERRORS, decode_file
from bignn.io import CheckpointError, float_model, read_checkpoint
from bignn.model import BigCNN
from bignn.quantize import int8_from_checkpoint


def load_compressed(path: str | Path) -> BigCNN:
    """The model in a compressed .bin file; a missing, truncated or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such compressed model (run `dvc repro compress` first)")
    try:
        return decode_file(path.read_bytes())
    except DECODE_ERRORS as exc:
        raise CheckpointError(f"{path} is not a readable compressed model: {str(exc).splitlines()[0]}") from None


def load_model(path: str | Path) -> nn.Module:
    """Any model file the pipeline writes: a float or int8 .pth checkpoint, or a compressed .bin."""
    if Path(path).suffix == ".bin":
        return load_compressed(path)
    ckpt = read_checkpoint(path)
    return int8_from_checkpoint(ckpt, path) if "format" in ckpt else float_model(ckpt, path)


class CsrLinear(nn.Module):
    """A linear layer whose weight is a torch.sparse CSR matrix: work and memory scale with the nonzeros."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            csr = linear.weight.detach().to_sparse_csr()
        self.weight = nn.Parameter(csr, requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y = x W^T + b computed as (W x^T)^T: CSR times dense is the kernel torch has for CSR on CPU.
        return torch.addmm(self.bias[:, None], self.weight, x.t()).t()


def with_csr_linears(model: BigCNN) -> nn.Module:
    sparse = copy.deepcopy(model).eval()
    for i, layer in enumerate(sparse.classifier):
        if isinstance(layer, nn.Linear):
            sparse.classifier[i] = CsrLinear(layer)
    return sparse


