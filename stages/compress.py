"""Stage: write the pruned model as a compact artifact (nonzero weights only, quantized, entropy-coded).

models/big_model_pruned.pth stores every zero as a float32; models/big_model_compressed.bin stores only the
nonzero weights: by default a 4-bit k-means codebook per layer, positions and values range-coded
(compress.coder: lzma with the uniform int8 grid is the simpler format). The evaluate stage rebuilds a model
from it and measures it like the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from stages.common import paths
from stages.common.compression import decode, decode_range, encode, encode_range, lzma_parts
from stages.common.config import Params, load_params
from stages.common.entropy import random_positions_bits
from stages.common.io import atomic_write_bytes, load_checkpoint, write_json
from stages.common.model import prunable
from stages.common.runtime import cli, pin_kernels


def compress_model(params: Params, model: nn.Module, dense_bytes: int,
                   source_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """The artifact's bytes and a size report: against the dense checkpoint and the model's own checkpoint
    (source_bytes), and in bits per nonzero weight split into positions, values (with codebooks and scales)
    and everything else."""
    pin_kernels(params.kernels)  # k-means sums floats: its codebook must not depend on the CPU either
    cfg = params.compress
    if cfg.coder == "range":
        data, parts = encode_range(model, cfg.bits, cfg.quantizer)
        decode_range(data)  # a file that cannot be read back is never written
    else:
        data, parts = encode(model, cfg.bits), lzma_parts(model, cfg.bits)
        decode(data)
    masks = [(m.weight != 0).numpy() for _, m in prunable(model)]
    nonzero = sum(int(mask.sum()) for mask in masks)
    random_bits = sum(random_positions_bits(mask) for mask in masks)
    report = {"bits": cfg.bits, "quantizer": cfg.quantizer, "coder": cfg.coder, "bytes": len(data),
              "dense_checkpoint_bytes": dense_bytes, "pruned_checkpoint_bytes": source_bytes,
              "times_smaller_than_dense": dense_bytes / len(data), "nonzero_weights": nonzero,
              "bits_per_nonzero": 8 * len(data) / nonzero,
              **{f"{k}_bits_per_nonzero": 8 * v / nonzero for k, v in parts.items()},
              # The entropy bound for the same counts at random positions in each layer (see entropy.py).
              "random_positions_bits_per_nonzero": random_bits / nonzero}
    return data, report


def run(params: Params, pruned_path: Path = paths.PRUNED_MODEL,
        dense_path: Path = paths.DENSE_MODEL) -> tuple[bytes, dict[str, Any]]:
    """compress_model of the checkpoint at pruned_path."""
    model, _ = load_checkpoint(pruned_path)
    return compress_model(params, model, dense_path.stat().st_size, pruned_path.stat().st_size)


def summary(path: Path, report: dict[str, Any]) -> str:
    return (f"{path}: {report['bytes']:,} bytes, {report['times_smaller_than_dense']:.1f}x smaller than the "
            f"dense checkpoint ({report['dense_checkpoint_bytes']:,} bytes); {report['bits_per_nonzero']:.2f} "
            f"bits per nonzero weight (positions {report['positions_bits_per_nonzero']:.2f}, values "
            f"{report['values_bits_per_nonzero']:.2f}, other {report['other_bits_per_nonzero']:.2f})")


def main() -> None:
    data, report = run(load_params())
    atomic_write_bytes(paths.COMPRESSED_MODEL, data)
    write_json(paths.COMPRESS_METRICS, report)
    print(summary(paths.COMPRESSED_MODEL, report))


if __name__ == "__main__":
    cli(main)
