"""Stage: write the pruned model as a compact artifact (nonzero weights only, quantized, entropy-coded).

models/pruned.pth stores every zero as a float32; models/compressed.bin stores only the nonzero weights: by
default a 4-bit k-means codebook per layer, positions and values range-coded (compress.coder: lzma with the
uniform int8 grid is the simpler format; bignn/compression.py). The evaluate stage rebuilds a model from it
and measures it like the others.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bignn import paths
from bignn.compression import compress_model, summary
from bignn.config import Params, load_params
from bignn.io import atomic_write_bytes, load_checkpoint, write_json
from bignn.runtime import cli, setup


def run(params: Params, pruned_path: Path = paths.PRUNED_MODEL,
        dense_path: Path = paths.DENSE_MODEL) -> tuple[bytes, dict[str, Any]]:
    """compress_model of the checkpoint at pruned_path."""
    model, _ = load_checkpoint(pruned_path)
    return compress_model(params.compress, model, dense_path.stat().st_size, pruned_path.stat().st_size)


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)  # k-means sums floats: its codebook must not depend on the CPU
    data, report = run(params)
    atomic_write_bytes(paths.COMPRESSED_MODEL, data)
    write_json(paths.COMPRESS_METRICS, {**report, "stage_seconds": time.perf_counter() - t0})
    print(summary(paths.COMPRESSED_MODEL, report))


if __name__ == "__main__":
    cli(main)
