"""Stage: the small student (bignn.recipes.train_student), models/student.pth: distilled from the dense model
when distill.alpha > 0, else trained on the labels alone.

Distillation is opt-in: paired over five seeds it gained nothing beyond twice its standard error at any
temperature (docs/distillation.md). When it is on, the same student is also trained alone from the same seed
(same images, same order, same augmentation: the teacher's soft targets are the only difference) and that
control's test accuracy goes to metrics/stages/distill.json beside the distilled one's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bignn import paths, recipes
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import load_checkpoint, save_checkpoint, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.model import count_params
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU

History = list[dict[str, Any]]


def train_student(params: Params, teacher: nn.Module | None, on_epoch: EpochLogger | None = None,
                  device: torch.device = CPU) -> tuple[nn.Module, History]:
    """One student from distill.seed, trained on `device`; with teacher=None it learns from the labels alone."""
    gen = seeded(params.distill.seed)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    return recipes.train_student(params, train, test, gen, teacher, on_epoch, device)


def run(params: Params, dense_path: Path = paths.DENSE_MODEL, on_epoch: EpochLogger | None = None,
        device: torch.device = CPU) -> tuple[nn.Module, dict[str, Any]]:
    """The student and the stage's metrics (its test accuracy; with distillation on, the control's too)."""
    if params.distill.alpha == 0:
        student, history = train_student(params, None, on_epoch, device)
        return student, {"test_accuracy": history[-1]["test_accuracy"], "distilled": False}
    teacher, _ = load_checkpoint(dense_path)
    student, history = train_student(params, teacher, on_epoch, device)
    _, alone = train_student(params, None, device=device)
    n_student, n_teacher = count_params(student), count_params(teacher)
    print(f"student {n_student:,} parameters = 1/{n_teacher / n_student:.1f} of the teacher's {n_teacher:,}")
    return student, {"test_accuracy": history[-1]["test_accuracy"], "distilled": True,
                     "alone_test_accuracy": alone[-1]["test_accuracy"],
                     "gain": history[-1]["test_accuracy"] - alone[-1]["test_accuracy"]}


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    with epoch_logger("student") as log:
        student, report = run(params, on_epoch=log, device=device)
    save_checkpoint(paths.STUDENT_MODEL, student)
    write_json(paths.DISTILL_METRICS, {**report, "stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
