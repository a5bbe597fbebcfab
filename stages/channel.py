"""Stage: structured pruning. Remove whole conv filters and FC neurons from the dense model while it
fine-tunes, rebuilding the layers smaller at every step; then an int8 copy of the result.

Writes models/channel.pth (float32, physically smaller layers: a plain checkpoint any stage loads) and
models/channel_int8.pth (torch.ao int8, x86 kernels), and metrics/channel_prune.json (shapes, seconds).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from stages.common import paths
from stages.common.config import Params, load_params
from stages.common.data import load_split
from stages.common.io import load_checkpoint, save_checkpoint, write_json
from stages.common.live import EpochLogger, epoch_logger
from stages.common.model import BigCNN, count_params
from stages.common.runtime import cli, seed_everything
from stages.common.training import score
from stages.methods.channels import kept_widths, prune_channels, widths
from stages.methods.gradual import gradual_fit
from stages.methods.quantize import quantize_int8, save_int8


def run(params: Params, dense_path: Path = paths.DENSE_MODEL, on_epoch: EpochLogger | None = None,
        ) -> tuple[BigCNN, list[dict[str, Any]]]:
    """The channel-pruned, fine-tuned model and its fine-tune history (one-shot: its one score as epoch 0)."""
    cfg = params.channel
    gen = seed_everything(cfg.seed, params.threads, params.kernels)
    model, _ = load_checkpoint(dense_path)
    dense = widths(model)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    if cfg.finetune_epochs == 0:
        prune_channels(model, kept_widths(dense, cfg.amount))
        history = [{"epoch": 0, **{f"test_{k}": v for k, v in score(model, test).items()}}]
        if on_epoch is not None:
            on_epoch(history[0])
        return model, history
    history = gradual_fit(model, params, cfg,
                          lambda target, opt: prune_channels(model, kept_widths(dense, target), opt),
                          test, gen, "channel fine-tune", on_epoch)
    return model, history


def int8_copy(params: Params, model: BigCNN) -> torch.nn.Module:
    calibration = load_split(params.data.root, train=True, limit=params.channel.calibration_images,
                             verify=params.data.verify).images
    return quantize_int8(model, calibration)


def main() -> None:
    params = load_params()
    t0 = time.perf_counter()
    with epoch_logger("channel") as log:
        model, _ = run(params, on_epoch=log)
    seconds = time.perf_counter() - t0
    int8 = int8_copy(params, model)
    print(f"rebuilt smaller: conv {model.model_args['conv_channels']}, FC {model.model_args['hidden']}, "
          f"{count_params(model):,} parameters")
    save_checkpoint(paths.CHANNEL_MODEL, model)
    save_int8(paths.CHANNEL_INT8_MODEL, int8, model.model_args)
    write_json(paths.CHANNEL_METRICS, {"conv_channels": model.model_args["conv_channels"],
                                       "hidden": model.model_args["hidden"], "params": count_params(model),
                                       "seconds": seconds})


if __name__ == "__main__":
    cli(main)
