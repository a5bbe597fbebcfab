"""Stage: write the pruned model as a compact artifact (nonzero weights only, quantized, lzma).

models/big_model_pruned.pth stores every zero as a float32; models/big_model_compressed.bin stores only the
nonzero weights. The evaluate stage rebuilds a model from it and measures it like the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.common import paths
from stages.common.compression import decode, encode
from stages.common.config import Params, load_params
from stages.common.io import atomic_write_bytes, load_checkpoint, write_json
from stages.common.runtime import cli


def run(params: Params, pruned_path: Path = paths.PRUNED_MODEL,
        dense_path: Path = paths.DENSE_MODEL) -> tuple[bytes, dict[str, Any]]:
    """The artifact's bytes and a size report against both fp32 checkpoints."""
    model, _ = load_checkpoint(pruned_path)
    data = encode(model, params.compress.bits)
    decode(data)  # a file that cannot be read back is never written
    dense_bytes = dense_path.stat().st_size
    report = {"bits": params.compress.bits, "bytes": len(data), "dense_checkpoint_bytes": dense_bytes,
              "pruned_checkpoint_bytes": pruned_path.stat().st_size,
              "times_smaller_than_dense": dense_bytes / len(data)}
    return data, report


def main() -> None:
    data, report = run(load_params())
    atomic_write_bytes(paths.COMPRESSED_MODEL, data)
    write_json(paths.COMPRESS_METRICS, report)
    print(f"{paths.COMPRESSED_MODEL}: {report['bytes']:,} bytes, {report['times_smaller_than_dense']:.1f}x smaller "
          f"than the dense checkpoint ({report['dense_checkpoint_bytes']:,} bytes)")


if __name__ == "__main__":
    cli(main)
