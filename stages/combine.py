"""Stage: every size lever on one model. The channel stage's smaller network (or, with `combine.source:
student`, the distill stage's student) is pruned unstructured as the prune stage prunes the dense one (with
the `combine` params: prune's keys) and compressed as the compress stage compresses (`compress.*`):
models/combined.bin. Loading it rebuilds the small model's dense layers, so it runs at that model's speed from
a file a few hundred times smaller than the dense checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from bignn import paths
from bignn.compression import summary
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.io import atomic_write_bytes, load_checkpoint, write_json
from bignn.live import EpochLogger, epoch_logger
from bignn.pruning.unstructured import prune_model
from bignn.recipes import combined_file
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU

SOURCES = {"channel": paths.CHANNEL_MODEL, "student": paths.STUDENT_MODEL}


def run(params: Params, source_path: Path | None = None, dense_path: Path = paths.DENSE_MODEL,
        on_epoch: EpochLogger | None = None, device: torch.device = CPU) -> tuple[bytes, dict[str, Any]]:
    """The compressed bytes and a report: the global sparsity reached plus compress_model's size report.
    source_path defaults to the checkpoint `combine.source` names. The fine-tune runs on `device`, the coder on
    the CPU."""
    cfg = params.combine
    source_path = SOURCES[cfg.source] if source_path is None else source_path
    gen = seeded(cfg.seed)
    model, _ = load_checkpoint(source_path)
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    report, _ = prune_model(model, cfg, params.train, train, test, gen, on_epoch, device)
    data, size = combined_file(params, model, dense_path.stat().st_size, source_path.stat().st_size, train, gen,
                               device)
    return data, {"global_sparsity": report["global_sparsity"], **size}


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    with epoch_logger("combined") as log:
        data, report = run(params, on_epoch=log, device=device)
    atomic_write_bytes(paths.COMBINED_MODEL, data)
    write_json(paths.COMBINE_METRICS, {**report, "stage_seconds": time.perf_counter() - t0})
    print(summary(paths.COMBINED_MODEL, report))


if __name__ == "__main__":
    cli(main)
