"""Stage: structured pruning. Remove whole conv filters and FC neurons from the dense model while it
fine-tunes, rebuilding the layers smaller at every step (bignn.recipes.channel_prune); then an int8 copy.

Writes models/channel.pth (float32, physically smaller layers: a plain checkpoint any stage loads),
models/channel_int8.pth (torch.ao int8, x86 kernels) and metrics/stages/channel.json (shapes, stage_seconds).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from bignn import paths, recipes
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import atomic_write_bytes, load_checkpoint, save_checkpoint, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.model import BigCNN, count_params
from bignn.quantize import int8_bytes, quantize_int8
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU


def run(params: Params, dense_path: Path = paths.DENSE_MODEL, on_epoch: EpochLogger | None = None,
        device: torch.device = CPU) -> tuple[BigCNN, list[dict[str, Any]]]:
    """The channel-pruned model, fine-tuned on `device`, and its fine-tune history (one-shot: its one score as
    epoch 0). The int8 copy is made on the CPU (int8_copy): torch's int8 kernels are CPU kernels."""
    gen = seeded(params.channel.seed)
    model, _ = load_checkpoint(dense_path)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    return model, recipes.channel_prune(model, params, train, test, gen, on_epoch, device)


def int8_copy(params: Params, model: BigCNN) -> torch.nn.Module:
    calibration = split_of(params.data, train=True, limit=params.channel.calibration_images).images
    return quantize_int8(model, calibration)


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    with epoch_logger("channel") as log:
        model, _ = run(params, on_epoch=log, device=device)
    int8 = int8_copy(params, model)
    print(f"rebuilt smaller: conv {model.model_args['conv_channels']}, FC {model.model_args['hidden']}, "
          f"{count_params(model):,} parameters")
    save_checkpoint(paths.CHANNEL_MODEL, model)
    atomic_write_bytes(paths.CHANNEL_INT8_MODEL, int8_bytes(int8, model.model_args))
    write_json(paths.CHANNEL_METRICS, {"conv_channels": model.model_args["conv_channels"],
                                       "hidden": model.model_args["hidden"], "params": count_params(model),
                                       "stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
