"""Stage: write the pruned model as a compact artifact (nonzero weights only, quantized, entropy-coded).

models/pruned.pth stores every zero as a float32; models/compressed.bin stores only the nonzero weights: by
default a 4-bit k-means codebook per layer, positions and values range-coded (compress.coder: lzma with the
uniform int8 grid is the simpler format; bignn/compression.py). With prune.codebook_epochs the file's shared
values are then trained on the training images (the p995 preset does). The evaluate stage rebuilds a model
from it and measures it like the others.
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
from bignn.recipes import coded_file
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU


def run(params: Params, pruned_path: Path = paths.PRUNED_MODEL, dense_path: Path = paths.DENSE_MODEL,
        device: torch.device = CPU) -> tuple[bytes, dict[str, Any]]:
    """coded_file of the checkpoint at pruned_path: compress_model's, its values trained only with
    prune.codebook_epochs (the training images are read only then)."""
    model, _ = load_checkpoint(pruned_path)
    cfg = params.prune
    train = split_of(params.data, train=True) if cfg.codebook_epochs else None
    return coded_file(params.compress, cfg, params.train, model, dense_path.stat().st_size,
                      pruned_path.stat().st_size, train, seeded(cfg.seed), device)


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)  # k-means sums floats: its codebook must not depend on the CPU
    device = use_device(params.device)
    data, report = run(params, device=device)
    atomic_write_bytes(paths.COMPRESSED_MODEL, data)
    write_json(paths.COMPRESS_METRICS, {**report, "stage_seconds": time.perf_counter() - t0})
    print(summary(paths.COMPRESSED_MODEL, report))


if __name__ == "__main__":
    cli(main)
