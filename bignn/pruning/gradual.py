"""Gradual pruning while fine-tuning, shared by unstructured (prune, combine) and structured (channel) pruning:
the timetable, and the fine-tune that calls each stage's own prune step on it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bignn.config import FinetuneConfig, TrainConfig
from bignn.data import Split
from bignn.training import CPU, FitSpec, LossFn, fit


def cubic_schedule(amount: float, steps: int) -> list[float]:
    """Sparsity after each of `steps` prune steps: fast at first, slow near the target (Zhu & Gupta 2017)."""
    return [amount * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


def ramp_steps(total_steps: int, ramp: float) -> int:
    """Optimizer steps in the prune ramp (the first `ramp` fraction of fine-tuning); at least one."""
    return max(1, int(ramp * total_steps))


def steps_due(step: int, total_steps: int, ramp: float, n_steps: int) -> list[int]:
    """The prune steps (0-based) that fall on optimizer step `step`: they are spread evenly over the first
    `ramp` fraction of fine-tuning, the rest recovers. A ramp shorter than n_steps optimizer steps puts
    several on one step."""
    n_ramp = ramp_steps(total_steps, ramp)
    return [k for k in range(n_steps) if step == k * n_ramp // n_steps]


def gradual_fit(model: nn.Module, cfg: FinetuneConfig, train_cfg: TrainConfig,
                prune_to: Callable[[float, torch.optim.Optimizer], None], train: Split, test: Split,
                gen: torch.Generator, desc: str,
                on_epoch: Callable[[dict[str, float]], None] | None = None,
                every_step: Callable[[int, int], None] | None = None,
                device: torch.device = CPU, loss_fn: LossFn | None = None) -> list[dict[str, float]]:
    """Fine-tune `model` on the `train` split with cfg's keys (prune's, combine's or channel's, label smoothing
    included), training's weight decay (train_cfg) and cfg.augment times training's augmentation;
    prune_to(target, optimizer) runs at each step of the cubic schedule, every_step(step, total_steps) before
    every optimizer step (and before that step's prune steps); loss_fn replaces the cross-entropy, as in fit().
    Runs on `device`, as fit() does. Returns fit()'s history."""
    schedule = cubic_schedule(cfg.amount, cfg.steps)
    if not cfg.dropout:  # fine-tuning only: evaluation never drops, and the checkpoint keeps the model's args
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0

    def on_step(step: int, total_steps: int, opt: torch.optim.Optimizer) -> None:
        if every_step is not None:
            every_step(step, total_steps)
        for k in steps_due(step, total_steps, cfg.ramp, len(schedule)):
            prune_to(schedule[k], opt)

    t = train_cfg
    spec = FitSpec(epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=t.weight_decay,
                   label_smoothing=cfg.label_smoothing, max_shift=cfg.augment * t.max_shift,
                   max_rotate=cfg.augment * t.max_rotate, max_scale=cfg.augment * t.max_scale,
                   schedule=cfg.schedule)
    return fit(model, train, test, spec, gen, on_step=on_step, loss_fn=loss_fn, desc=desc, on_epoch=on_epoch,
               device=device)
