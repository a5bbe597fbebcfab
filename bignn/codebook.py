"""Trained quantization: the shared values of a k-means file, trained (Han et al. 2016, "Deep Compression",
section 3.2).

k-means gives each layer's kept weights 2^bits shared values, fitted to the weights and not to the loss: at
conv [8, 16, 32] with 20% of its weights kept, 4-bit values cost up to 0.2 pt of held-out accuracy. Here the model
a k-means file decodes to trains on: each layer's weight is its shared values looked up by the file's indices,
so a step moves a shared value by the sum of its weights' gradients; which weights are kept and which value
each takes stay as the file has them, and so do the batch norms' scales (1: the convs carry them, see
compression.py). The values, the batch-norm shifts and the biases train. Coding the result again gives a
file of the same positions and indices with other values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from bignn.data import Split
from bignn.training import CPU, FitSpec, fit


class SharedValues(nn.Module):
    """A layer's weight as `values[index]` where the weight is nonzero, 0 elsewhere (a parametrization)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        kept = weight != 0
        values, index = torch.unique(weight[kept], return_inverse=True)
        full = torch.zeros(weight.shape, dtype=torch.long)
        full[kept] = index
        self.values = nn.Parameter(values.clone())
        self.register_buffer("index", full)
        self.register_buffer("kept", kept)

    def forward(self, _weight: torch.Tensor) -> torch.Tensor:
        return self.values[self.index] * self.kept


class _Shift(nn.Module):
    """A batch norm that the file has folded to scale 1, mean 0, variance 1 - eps: its shift alone, the same
    Parameter. In training mode the batch norm would normalize by the batch's statistics instead."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.bias = norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(1, -1, 1, 1)


def _shift_norms(model: nn.Module) -> list[tuple[nn.Module, str, nn.BatchNorm2d]]:
    """Each batch norm replaced by its _Shift; returns (parent, name, batch norm) to put them back."""
    swapped = []
    for seq in list(model.modules()):
        if isinstance(seq, nn.Sequential):
            for name, child in list(seq.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(seq, name, _Shift(child))
                    swapped.append((seq, name, child))
    return swapped


def _folded(model: nn.Module) -> bool:
    """Every batch norm applies its shift alone (a decoded range file whose convs carry the scales)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    return all(torch.allclose(m.weight / torch.sqrt(m.running_var + m.eps), torch.ones_like(m.weight))
               and not m.running_mean.any() for m in norms)


def tune_codebooks(model: nn.Module, spec: FitSpec, train: Split, gen: torch.Generator,
                   device: torch.device = CPU) -> list[dict[str, Any]]:
    """Train `model`'s shared values, batch-norm shifts and biases in place (spec: the fit; its weight decay
    should be 0, the values are not weights to shrink); returns fit()'s history. `model` is what a k-means file
    decodes to: its batch norms folded, each conv and linear weight holding at most 2^bits values."""
    if not _folded(model):
        raise ValueError("tune_codebooks trains a decoded range file's model: its batch norms must be folded")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        parametrize.register_parametrization(m, "weight", SharedValues(m.weight.detach()))
        m.parametrizations.weight.original.requires_grad_(False)
    dropouts = {m: m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    for m in dropouts:
        m.p = 0.0  # as the fine-tunes before it: the file's values are for evaluation, which never drops
    swapped = _shift_norms(model)
    try:
        history = fit(model, train, None, spec, gen, desc="codebook", device=device)
    finally:
        for seq, name, norm in swapped:
            setattr(seq, name, norm)
        for m, p in dropouts.items():
            m.p = p
        for m in layers:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return history
