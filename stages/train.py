"""Stage: train the big dense CNN (bignn.recipes.train_dense) and save models/dense.pth."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from bignn import paths, recipes
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import save_checkpoint, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU


def run(params: Params, on_epoch: EpochLogger | None = None, device: torch.device = CPU,
        ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train from scratch on `device`; returns the model (on the CPU) and its per-epoch history (each row also
    to on_epoch)."""
    gen = seeded(params.seed)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    return recipes.train_dense(params, train, test, gen, on_epoch, device)


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    with epoch_logger("dense") as log:
        model, _ = run(params, on_epoch=log, device=device)
    save_checkpoint(paths.DENSE_MODEL, model)
    write_json(paths.stage_metrics("train"), {"stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
