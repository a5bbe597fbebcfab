"""Stage: train the big dense CNN (bignn.recipes.train_dense) and save models/dense.pth."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from bignn import paths, recipes
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import save_checkpoint, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.runtime import cli, seeded, setup


def run(params: Params, on_epoch: EpochLogger | None = None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train from scratch; returns the model and its per-epoch history (each row also to on_epoch)."""
    gen = seeded(params.seed)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    return recipes.train_dense(params, train, test, gen, on_epoch)


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    with epoch_logger("dense") as log:
        model, _ = run(params, on_epoch=log)
    save_checkpoint(paths.DENSE_MODEL, model)
    write_json(paths.stage_metrics("train"), {"stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
