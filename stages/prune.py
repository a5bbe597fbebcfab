"""Stage: prune the dense model unstructured (bignn/pruning/unstructured.py), fine-tune with the masks held,
save models/pruned.pth and the per-layer sparsity (metrics/layers_pruned.csv)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import load_checkpoint, save_checkpoint, write_csv, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.pruning.unstructured import prune_model
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU


def run(params: Params, dense_path: Path = paths.DENSE_MODEL, on_epoch: EpochLogger | None = None,
        device: torch.device = CPU) -> tuple[nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """Prune the checkpoint at dense_path to prune.amount, fine-tuning on `device`; returns the pruned model,
    its sparsity report and fine-tune history (prune_model)."""
    gen = seeded(params.prune.seed)
    model, _ = load_checkpoint(dense_path)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    report, history = prune_model(model, params.prune, params.train, train, test, gen, on_epoch, device)
    return model, report, history


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    with epoch_logger("pruned") as log:
        model, report, _ = run(params, on_epoch=log, device=device)
    print(f"global sparsity {report['global_sparsity']:.4f}")
    for row in report["layers"]:
        print(f"  {row['layer']:<14} {row['nonzero']:>9,} / {row['params']:>9,} nonzero  "
              f"sparsity {row['sparsity']:.4f}")
    save_checkpoint(paths.PRUNED_MODEL, model)
    write_csv(paths.LAYER_SPARSITY, report["layers"])
    write_json(paths.PRUNE_METRICS, {"global_sparsity": report["global_sparsity"],
                                     "stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
