"""Stage: prune the dense model unstructured (stages/methods/unstructured.py), fine-tune with the masks held,
save models/big_model_pruned.pth and the per-layer sparsity (metrics/layer_sparsity.csv)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from stages.common import paths
from stages.common.config import Params, load_params
from stages.common.data import load_split
from stages.common.io import load_checkpoint, save_checkpoint, write_csv, write_json
from stages.common.live import EpochLogger, epoch_logger
from stages.common.runtime import cli, seed_everything
from stages.methods import unstructured


def run(params: Params, dense_path: Path = paths.DENSE_MODEL, on_epoch: EpochLogger | None = None,
        ) -> tuple[nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """Prune the checkpoint at dense_path to params.prune.amount; returns the pruned model, its sparsity report
    and fine-tune history (unstructured.prune_model)."""
    gen = seed_everything(params.prune.seed, params.threads, params.kernels)
    model, _ = load_checkpoint(dense_path)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    report, history = unstructured.prune_model(model, params, params.prune, test, gen, on_epoch)
    return model, report, history


def main() -> None:
    params = load_params()
    t0 = time.perf_counter()
    with epoch_logger("finetune") as log:
        model, report, _ = run(params, on_epoch=log)
    seconds = time.perf_counter() - t0
    print(f"global sparsity {report['global_sparsity']:.4f}")
    for row in report["layers"]:
        print(f"  {row['layer']:<14} {row['nonzero']:>9,} / {row['params']:>9,} nonzero  "
              f"sparsity {row['sparsity']:.4f}")
    save_checkpoint(paths.PRUNED_MODEL, model)
    write_csv(paths.LAYER_SPARSITY, report["layers"])
    write_json(paths.PRUNE_METRICS, {"global_sparsity": report["global_sparsity"], "seconds": seconds})


if __name__ == "__main__":
    cli(main)
