"""Stage: the small student, distilled from the dense model when distill.alpha > 0, and the same student
trained alone as the control.

Both students see the same images in the same order (same seed, same augmentation), so the only difference
between models/student.pth and models/student_scratch.pth is the teacher's soft targets. Distillation is
opt-in: paired over five seeds it gained nothing beyond twice its standard error at any temperature
(docs/distillation.md), so by default (alpha 0) the student learns from the labels alone, is trained once,
and both files hold it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stages.common import paths
from stages.common.config import Params, load_params
from stages.common.data import Split, load_split
from stages.common.io import load_checkpoint, save_checkpoint
from stages.common.live import EpochLogger, epoch_logger
from stages.common.model import build_model, count_params, model_args_from
from stages.common.runtime import cli, seed_everything
from stages.common.training import FitSpec, LossFn, cached_distillation, distillation_loss, fit, prepare

History = list[dict[str, Any]]


def teacher_loss(teacher: nn.Module, params: Params, train: Split) -> LossFn:
    cfg, smoothing = params.distill, params.train.label_smoothing
    if cfg.soft_targets == "cached":
        return cached_distillation(teacher, train, cfg.temperature, cfg.alpha, smoothing)
    prepare(teacher).eval()

    def live(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # The teacher sees the student's own augmented batch: soft targets for exactly these images.
        with torch.no_grad():
            target = teacher(images)
        return distillation_loss(logits, target, labels, cfg.temperature, cfg.alpha, smoothing)

    return live


def train_student(params: Params, teacher: nn.Module | None,
                  on_epoch: EpochLogger | None = None) -> tuple[nn.Module, History]:
    """One student from distill.seed; with teacher=None it is the from-scratch control."""
    cfg, t = params.distill, params.train
    gen = seed_everything(cfg.seed, params.threads, params.kernels)
    train = load_split(params.data.root, train=True, limit=params.data.train_limit, verify=params.data.verify)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    student = build_model(**model_args_from(cfg.student))
    spec = FitSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=t.weight_decay,
                   label_smoothing=t.label_smoothing, max_shift=t.max_shift, max_rotate=t.max_rotate,
                   max_scale=t.max_scale)
    loss_fn = None if teacher is None else teacher_loss(teacher, params, train)
    history = fit(student, train, test, spec, gen, loss_fn=loss_fn,
                  desc="distill" if teacher is not None else "scratch", on_epoch=on_epoch)
    return student, history


def run(params: Params, dense_path: Path = paths.DENSE_MODEL,
        loggers: Mapping[str, EpochLogger] | None = None) -> dict[str, tuple[nn.Module, History]]:
    """{"student": (model, history), "student_scratch": (model, history)}; loggers by the same names."""
    loggers = loggers or {}
    teacher, _ = load_checkpoint(dense_path)
    distilling = params.distill.alpha > 0
    # Without distillation the one student's epochs go to both logs, so both keep their plots.
    logs = [f for f in (loggers.get("student_scratch"), None if distilling else loggers.get("student")) if f]

    def log_all(row: dict[str, float]) -> None:
        for log in logs:
            log(row)

    scratch = train_student(params, None, log_all)
    distilled = train_student(params, teacher, loggers.get("student")) if distilling else scratch
    out = {"student": distilled, "student_scratch": scratch}
    n_student, n_teacher = count_params(out["student"][0]), count_params(teacher)
    print(f"student {n_student:,} parameters = 1/{n_teacher / n_student:.1f} of the teacher's {n_teacher:,}")
    return out


OUTPUTS = {"student": paths.STUDENT_MODEL, "student_scratch": paths.SCRATCH_MODEL}


def main() -> None:
    params = load_params()
    with epoch_logger("student") as student, epoch_logger("student_scratch") as scratch:
        results = run(params, loggers={"student": student, "student_scratch": scratch})
    for name, (model, _) in results.items():
        save_checkpoint(OUTPUTS[name], model)


if __name__ == "__main__":
    cli(main)
