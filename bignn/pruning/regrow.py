"""Regrowth while fine-tuning (RigL, Evci et al. 2020): after the last prune step the mask keeps its size but
may move.

Every `every` optimizer steps, a fraction of the kept weights with the smallest magnitudes (ranked across all
layers) is dropped and as many pruned weights with the largest gradients come back, at zero. The fraction
decays along a cosine from its start value at the end of the prune ramp to 0 at UNTIL of fine-tuning; the
rest fine-tunes on a fixed mask. A pruned weight's gradient is the straight-through one: the forward uses
weight * mask, the backward hands every weight the full gradient, and pruned weights are set back to zero
before each step, so the gradient only chooses which weights grow.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn.utils import prune

# The share of fine-tuning after which the mask stops moving.
UNTIL = 0.75


def _masked_straight_through(name: str, module: nn.Module) -> torch.Tensor:
    orig = getattr(module, name + "_orig")
    mask = getattr(module, name + "_mask")
    # Exactly orig * mask forward (x + (0 - x) is 0); the product is out of the graph, so the gradient of
    # weight_orig is the gradient of the weight itself, for pruned entries too.
    return orig + (orig * mask.to(orig.dtype) - orig).detach()


def straight_through(model: nn.Module) -> None:
    """Make every pruning hook of `model` pass the full gradient to its `*_orig` Parameter. A prune step
    makes new hooks: call it after each."""
    for m in model.modules():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                hook.apply_mask = functools.partial(_masked_straight_through, hook._tensor_name)


def _masked_layers(layers: list[nn.Module]) -> list[nn.Module]:
    return [m for m in layers if hasattr(m, "weight_mask")]


@torch.no_grad()
def zero_pruned(layers: list[nn.Module]) -> None:
    """Pruned weights back to zero (the optimizer moved them along their straight-through gradients)."""
    for m in _masked_layers(layers):
        m.weight_orig.mul_(m.weight_mask)


def fraction(step: int, ramp_end: int, total: int, start: float) -> float:
    """The share of kept weights that moves at `step`: `start` right after the ramp, cosine down to 0 at UNTIL."""
    stop = UNTIL * total
    if step <= ramp_end or step >= stop:
        return 0.0
    return start * (1 + math.cos(math.pi * (step - ramp_end) / (stop - ramp_end))) / 2


@torch.no_grad()
def regrow(layers: list[nn.Module], frac: float) -> int:
    """Drop `frac` of the kept weights (smallest |weight|) and grow as many pruned ones (largest |gradient| of
    the last step), at zero; returns how many moved each way. No gradient yet: nothing moves."""
    layers = _masked_layers(layers)
    if not layers or layers[0].weight_orig.grad is None:
        return 0
    zero_pruned(layers)  # grown weights start at zero (during fine-tuning every step already did this)
    w = torch.cat([m.weight_orig.abs().flatten() for m in layers])
    g = torch.cat([m.weight_orig.grad.abs().flatten() for m in layers])
    mask = torch.cat([m.weight_mask.flatten() for m in layers])
    k = int(frac * mask.sum())
    if k == 0:
        return 0
    drop = torch.topk(torch.where(mask > 0, -w, -torch.inf), k).indices
    grow = torch.topk(torch.where(mask > 0, -torch.inf, g), k).indices
    mask[drop] = 0
    mask[grow] = 1
    i = 0
    for m in layers:
        n = m.weight_mask.numel()
        m.weight_mask.copy_(mask[i:i + n].view_as(m.weight_mask))
        m.weight_orig.mul_(m.weight_mask)
        i += n
    return k
