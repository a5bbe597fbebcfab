"""Unstructured pruning: which weights to zero (PRUNERS, one function per method), applied at once or gradually
while fine-tuning, then made permanent with torch.nn.utils.prune.remove so the weights hold real zeros.
The prune stage applies it to the dense model, the combine stage to the channel model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from bignn.config import PruneConfig, TrainConfig
from bignn.data import Split
from bignn.live import EpochLogger
from bignn.model import prunable
from bignn.pruning import regrow, sparse, variational
from bignn.pruning.gradual import gradual_fit, ramp_steps
from bignn.training import CPU, FitSpec, LossFn, cached_distillation, prepare, score


def _targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for _, m in prunable(model)]


def _masked(m: nn.Module) -> int:
    """Weights of one layer already masked out (a layer that has no mask yet has none)."""
    return int((m.weight_mask == 0).sum()) if hasattr(m, "weight_mask") else 0


def _pruned_count(model: nn.Module) -> int:
    return sum(_masked(m) for m, _ in _targets(model))


def _with_floor(scores: torch.Tensor, min_density: float, m: nn.Module) -> torch.Tensor:
    """The scores with the layer's top ceil(min_density * size) still-unmasked weights made unprunable
    (infinite). Masked weights score 0 first, so a score that ignores the mask (random's) cannot spend the
    floor on weights that are already gone."""
    keep = math.ceil(min_density * scores.numel())
    if keep == 0:
        return scores
    if hasattr(m, "weight_mask"):
        scores = scores * m.weight_mask
    flat = scores.abs().flatten()
    flat[torch.topk(flat, keep, sorted=False).indices] = math.inf
    return flat.view_as(scores)


def _global(model: nn.Module, amount: float, scores: Callable[[nn.Module], torch.Tensor],
            min_density_ends: float = 0.0) -> None:
    """Mask the conv and linear weights with the lowest scores, ranked across all layers at once; the first
    and the last layer keep at least min_density_ends of their weights."""
    targets = _targets(model)
    total = sum(m.weight.numel() for m, _ in targets)
    floors = {id(targets[0][0]): min_density_ends, id(targets[-1][0]): min_density_ends}
    protected = sum(math.ceil(f * m.weight.numel()) for m, _ in targets for f in [floors.get(id(m), 0.0)])
    if protected > total - round(amount * total):
        raise ValueError(f"prune.min_density_ends {min_density_ends} keeps {protected:,} weights in the first and "
                         f"last layers, more than the {total - round(amount * total):,} that prune.amount "
                         f"{amount} leaves in the whole model")
    # global_unstructured ranks only the still-unmasked weights, so ask for the difference. It flattens the
    # scores with .view(): hand it contiguous tensors (a masked layer's `weight` keeps the layout it had).
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                              importance_scores={(m, "weight"): _with_floor(scores(m), floors.get(id(m), 0.0), m)
                                                 for m, _ in targets},
                              amount=round(amount * total) - _pruned_count(model))


def global_l1(model: nn.Module, amount: float, min_density_ends: float = 0.0) -> None:
    """Mask the smallest-magnitude conv and linear weights, ranked across all layers at once."""
    _global(model, amount, lambda m: m.weight.contiguous(), min_density_ends)


def global_vd(model: nn.Module, amount: float, log_alpha: dict[nn.Module, torch.Tensor],
              min_density_ends: float = 0.0) -> None:
    """Mask the conv and linear weights with the largest learned log alpha (variational.learn_log_alpha: the
    noisiest relative to their size), ranked across all layers at once."""
    # The ranking wants small scores for what goes: exp(-log alpha), positive as L1Unstructured's abs() needs.
    _global(model, amount, lambda m: torch.exp(-log_alpha[m]).to(m.weight.device), min_density_ends)


def random_unstructured(model: nn.Module, amount: float, min_density_ends: float = 0.0) -> None:
    """Baseline: mask weights chosen at random (torch's global RNG, seeded by prune.seed)."""
    # Drawn on the CPU (the same choice on any device), then moved to the weights.
    _global(model, amount, lambda m: torch.rand(m.weight.shape).to(m.weight.device), min_density_ends)


def layer_l1(model: nn.Module, amount: float) -> None:
    """Baseline: the same fraction of every layer, smallest magnitudes first within each layer."""
    for m, name in _targets(model):
        prune.l1_unstructured(m, name, amount=round(amount * m.weight.numel()) - _masked(m),
                              importance_scores=m.weight.contiguous())


def erk_densities(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """Erdos-Renyi-Kernel allocation (Evci et al. 2020): each layer's density proportional to the sum of its
    weight's dimensions over their product (small and kernel-heavy layers stay denser), scaled so the kept
    weights are `density` of all; a layer that would exceed 1 stays dense and the others share the rest."""
    sizes = [math.prod(s) for s in shapes]
    raw = [sum(s) / n for s, n in zip(shapes, sizes, strict=True)]
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(sizes)) if i not in dense]
        budget = density * sum(sizes) - sum(sizes[i] for i in dense)
        scale = budget / sum(raw[i] * sizes[i] for i in free)
        over = {i for i in free if raw[i] * scale > 1}
        if not over:
            return [1.0 if i in dense else raw[i] * scale for i in range(len(sizes))]
        dense |= over


def erk_l1(model: nn.Module, amount: float) -> None:
    """Baseline: each layer keeps its ERK share of 1 - amount, smallest magnitudes first within the layer."""
    targets = _targets(model)
    densities = erk_densities([tuple(m.weight.shape) for m, _ in targets], 1 - amount)
    for (m, name), density in zip(targets, densities, strict=True):
        prune.l1_unstructured(m, name, amount=max(0, round((1 - density) * m.weight.numel()) - _masked(m)),
                              importance_scores=m.weight.contiguous())


PRUNERS: dict[str, Callable[[nn.Module, float], None]] = {
    "global_l1": global_l1, "layer_l1": layer_l1, "erk_l1": erk_l1, "random": random_unstructured}
# Methods whose ranking is learned first (prune_model trains it, then ranks with it).
LEARNED = ("global_vd",)


def make_permanent(model: nn.Module) -> None:
    for m in model.modules():
        for name in [k[:-len("_mask")] for k, _ in m.named_buffers(recurse=False) if k.endswith("_mask")]:
            prune.remove(m, name)


def layer_sparsity(model: nn.Module) -> list[dict[str, Any]]:
    """Per conv / linear layer: weights left nonzero out of the layer's size."""
    rows = []
    for name, m in prunable(model):
        w = m.weight.detach()
        total = w.numel()
        nz = int(torch.count_nonzero(w))
        rows.append({"layer": name, "params": total, "nonzero": nz, "sparsity": 1 - nz / total})
    return rows


def global_sparsity(rows: list[dict[str, Any]]) -> float:
    return 1 - sum(r["nonzero"] for r in rows) / sum(r["params"] for r in rows)


def _regrowth(model: nn.Module, cfg: PruneConfig) -> Callable[[int, int], None]:
    """The per-step work of prune.regrow: pruned weights back to zero, and every cfg.regrow_every steps
    after the ramp the RigL swap of regrow.fraction of the kept weights."""
    layers = [m for m, _ in _targets(model)]

    def every_step(step: int, total_steps: int) -> None:
        regrow.zero_pruned(layers)
        frac = regrow.fraction(step, ramp_steps(total_steps, cfg.ramp), total_steps, cfg.regrow)
        if frac > 0 and step % cfg.regrow_every == 0:
            regrow.regrow(layers, frac)

    return every_step


def _self_distillation(model: nn.Module, cfg: PruneConfig, train: Split, device: torch.device) -> LossFn | None:
    """With cfg.distill_alpha > 0, the fine-tune's loss: distillation from the model's own logits before any
    weight goes (one pass over the plain training images), so the pruned net keeps the unpruned one's soft
    targets, not only the labels; None (training's loss) at 0."""
    if cfg.distill_alpha == 0:
        return None
    return cached_distillation(model.to(device), train, cfg.distill_temperature, cfg.distill_alpha,
                               cfg.label_smoothing)


def _variational_pruner(model: nn.Module, cfg: PruneConfig, train_cfg: TrainConfig, train: Split,
                        gen: torch.Generator, device: torch.device) -> Callable[[nn.Module, float], None]:
    """global_vd ranking by the log alphas of cfg.vd_epochs of sparse variational dropout (which train the
    model's weights too), at cfg.vd_lr with a cosine decay, cfg.augment times training's augmentation, no weight
    decay (the KL term is the weights' prior) and no label smoothing: the variational bound's data term is the
    labels' log-likelihood, and smoothed targets pay every weight to stay less sure."""
    t = train_cfg
    spec = FitSpec(epochs=cfg.vd_epochs, batch_size=cfg.batch_size, lr=cfg.vd_lr, weight_decay=0.0,
                   label_smoothing=0.0, max_shift=cfg.augment * t.max_shift,
                   max_rotate=cfg.augment * t.max_rotate, max_scale=cfg.augment * t.max_scale, schedule="cosine")
    log_alpha = variational.learn_log_alpha(model, spec, cfg.vd_beta, train, gen, device)
    return functools.partial(global_vd, log_alpha=log_alpha)


def prune_model(model: nn.Module, cfg: PruneConfig, train_cfg: TrainConfig, train: Split, test: Split,
                gen: torch.Generator, on_epoch: EpochLogger | None = None, device: torch.device = CPU,
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Prune `model` in place to cfg.amount, fine-tuning as cfg says; returns its sparsity report and fine-tune
    history (each row also to on_epoch; one-shot pruning logs its one score as epoch 0). A learned method
    (global_vd) trains its ranking first. The fine-tune runs on `device`; the model ends on the CPU."""
    if cfg.method in LEARNED:
        pruner = _variational_pruner(model, cfg, train_cfg, train, gen, device)
    else:
        pruner = PRUNERS[cfg.method]
    if cfg.min_density_ends > 0:  # validated: only the global methods take a floor
        pruner = functools.partial(pruner, min_density_ends=cfg.min_density_ends)
    if cfg.finetune_epochs == 0:
        pruner(model, cfg.amount)
        history = [{"epoch": 0, **{f"test_{k}": v for k, v in score(model, test).items()}}]
        if on_epoch is not None:
            on_epoch(history[0])
    else:
        def prune_to(target: float, _opt: torch.optim.Optimizer) -> None:
            # torch's global pruning flattens weights and masks with .view(), which channels-last conv tensors
            # refuse: prune in the default layout, then train on in the fast one. Between prune steps the masks
            # hold still, so the sparse enough linear layers train on their kept weights only (not under
            # kernels: portable, see sparse.wrap); regrowth needs every weight's gradient, so it keeps them dense.
            sparse.unwrap(model)
            model.to(memory_format=torch.contiguous_format)
            pruner(model, target)
            prepare(model)
            if cfg.regrow > 0:
                regrow.straight_through(model)
            else:
                sparse.wrap(model)

        every_step = _regrowth(model, cfg) if cfg.regrow > 0 else None
        history = gradual_fit(model, cfg, train_cfg, prune_to, train, test, gen, "fine-tune", on_epoch,
                              every_step, device, _self_distillation(model, cfg, train, device))
        sparse.unwrap(model)
    make_permanent(model)
    rows = layer_sparsity(model)
    return {"global_sparsity": global_sparsity(rows), "layers": rows}, history
