"""Structured pruning: remove whole conv filters and FC neurons, so the layers become physically smaller.

Unlike a mask, removal shrinks every later product, so fine-tuning gets cheaper as channels go. The layers
shrink in place during training: each shrunk Parameter is replaced by its kept slice and the optimizer is
pointed at it, its per-parameter state sliced alike, so one optimizer and one learning-rate schedule run
through the whole gradual prune.
"""

from __future__ import annotations

import torch
from torch import nn

from bignn.model import BigCNN


def layers(model: BigCNN) -> tuple[list[nn.Conv2d], list[nn.BatchNorm2d], list[nn.Linear]]:
    return ([m for m in model.features if isinstance(m, nn.Conv2d)],
            [m for m in model.features if isinstance(m, nn.BatchNorm2d)],
            [m for m in model.classifier if isinstance(m, nn.Linear)])


def widths(model: BigCNN) -> list[int]:
    """Output channels of every hidden layer, conv then FC (the 10-class output layer is not pruned)."""
    convs, _, fcs = layers(model)
    return [c.out_channels for c in convs] + [fc.out_features for fc in fcs[:-1]]


def _cut(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """x without the entries outside `index` along `dim`; a 4-D tensor keeps its memory format (the conv
    weights train channels-last)."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.detach().index_select(dim, index).contiguous(memory_format=fmt)


def _take(module: nn.Module, name: str, dim: int, index: torch.Tensor, opt: torch.optim.Optimizer | None) -> None:
    """Keep `index` along `dim` of one of module's parameters or buffers, and of the optimizer's state for it.

    A parameter is replaced by a new one (autograd remembers a leaf's shape, so resizing it in place breaks
    the next backward pass), and the optimizer is pointed at the new one with its state sliced alike.
    """
    old = getattr(module, name)
    if not isinstance(old, nn.Parameter):
        setattr(module, name, _cut(old, dim, index))  # a buffer: running mean or variance
        return
    new = nn.Parameter(_cut(old, dim, index), requires_grad=old.requires_grad)
    if opt is not None:
        for group in opt.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if old in opt.state:
            opt.state[new] = {k: _cut(v, dim, index) if torch.is_tensor(v) and v.shape == old.shape else v
                              for k, v in opt.state.pop(old).items()}
    setattr(module, name, new)


def l1_keep(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices (ascending) of the `keep` output channels with the largest L1 filter norm; ties go to the
    lower index, so the choice is deterministic."""
    norm = weight.detach().flatten(1).abs().sum(1)
    return torch.sort(torch.argsort(norm, descending=True, stable=True)[:keep]).values


def prune_channels(model: BigCNN, keep: list[int], opt: torch.optim.Optimizer | None = None) -> None:
    """Shrink every hidden layer to its `keep` output channels with the largest L1 filter norm, in place.

    A removed conv channel takes its batch-norm entries and the next layer's input slice with it (for the first
    FC layer, that channel's side*side block of the flattened features); a removed neuron, its row and bias and
    the next layer's column.
    """
    convs, norms, fcs = layers(model)
    if len(keep) != len(convs) + len(fcs) - 1:
        raise ValueError(f"keep needs one count per hidden layer ({len(convs) + len(fcs) - 1}), got {keep}")
    # Ranked before anything is cut: each filter by its whole L1 norm, inputs about to go included.
    kept = [l1_keep(layer.weight, k) for layer, k in zip([*convs, *fcs[:-1]], keep, strict=True)]
    for i, (conv, bn, index) in enumerate(zip(convs, norms, kept, strict=False)):
        _take(conv, "weight", 0, index, opt)
        for name in ("weight", "bias", "running_mean", "running_var"):
            _take(bn, name, 0, index, opt)
        conv.out_channels = bn.num_features = len(index)
        if i + 1 < len(convs):
            _take(convs[i + 1], "weight", 1, index, opt)
            convs[i + 1].in_channels = len(index)
        else:
            area = (28 >> len(convs)) ** 2
            _take(fcs[0], "weight", 1, (index[:, None] * area + torch.arange(area, device=index.device)).flatten(), opt)
            fcs[0].in_features = len(index) * area
    for fc, nxt, index in zip(fcs[:-1], fcs[1:], kept[len(convs):], strict=True):
        _take(fc, "weight", 0, index, opt)
        _take(fc, "bias", 0, index, opt)
        _take(nxt, "weight", 1, index, opt)
        fc.out_features = nxt.in_features = len(index)
    model.model_args = dict(model.model_args, conv_channels=keep[:len(convs)], hidden=keep[len(convs):])


def kept_widths(dense: list[int], amount: float) -> list[int]:
    """Channels left in each hidden layer after removing the `amount` fraction (at least one)."""
    return [max(1, n - round(amount * n)) for n in dense]
