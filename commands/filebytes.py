"""Where the bytes of a compressed model file go, and what its "other" part (biases, batch-norm statistics,
header, containers) would weigh stored otherwise (not a stage).

    python -m commands.filebytes models/combined.bin
    python -m commands.filebytes models/big_model_compressed.bin

Prints each stream of the range-coded format (stages/methods/compression.py) with its stored and raw bytes,
then the file's size with the dense tensors stored four other ways, each measured by compressing the changed
stream as the format does (xz, preset 9 extreme), not estimated: without batch norm's step counters (which
inference never reads), in float16, with each batch norm folded into one scale and one shift per channel
(exact up to float rounding), and with the four small lzma streams in one container instead of four. The
test accuracy of the model with its dense tensors rounded to float16 says what that variant would cost.
"""

from __future__ import annotations

import argparse
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.common.config import load_params
from stages.common.data import load_split
from stages.common.model import prunable
from stages.common.runtime import cli
from stages.common.training import score
from stages.methods.compression import RANGE_MAGIC, decode_range, read_range_streams, xz

SMALL_STREAMS = ("header", "counts", "tables", "dense")


def dense_tensors(data: bytes) -> dict[str, np.ndarray]:
    """The file's dense tensors (biases, batch-norm statistics and counters), by name, in the file's order and
    byte order: everything in the decoded model's state but the conv and linear weights."""
    model = decode_range(data)
    sparse = {f"{name}.weight" for name, _ in prunable(model)}
    return {name: t.numpy().astype(t.numpy().dtype.newbyteorder("<"))
            for name, t in model.state_dict().items() if name not in sparse}


def folded(tensors: dict[str, np.ndarray], eps: float = 1e-5) -> dict[str, np.ndarray]:
    """Each batch norm as scale = weight / sqrt(var + eps) and shift = bias - mean * scale; other tensors as
    they are; step counters dropped."""
    out = {}
    for name, t in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if f"{prefix}.running_var" not in tensors:
            out[name] = t
        elif leaf == "weight":
            out[name] = t / np.sqrt(tensors[f"{prefix}.running_var"] + eps)
        elif leaf == "bias":
            scale = tensors[f"{prefix}.weight"] / np.sqrt(tensors[f"{prefix}.running_var"] + eps)
            out[name] = t - tensors[f"{prefix}.running_mean"] * scale
    return out


def _stream(tensors: dict[str, np.ndarray], dtype: str | None = None) -> bytes:
    return b"".join((t if dtype is None or t.dtype.kind != "f" else t.astype(dtype)).tobytes()
                    for t in tensors.values())


def report(data: bytes) -> dict[str, Any]:
    """Stored and raw bytes of every stream, and the file's size under each way of storing the dense part."""
    streams = read_range_streams(data)
    raw = {s: lzma.decompress(streams[s]) for s in SMALL_STREAMS}
    tensors = dense_tensors(data)
    no_counters = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    dense_now = len(streams["dense"])
    variants = {
        "without the batch-norm step counters": xz(_stream(no_counters)),
        "float16, without the counters": xz(_stream(no_counters, "<f2")),
        "batch norm folded (scale, shift), float32": xz(_stream(folded(tensors))),
        "batch norm folded, float16": xz(_stream(folded(tensors), "<f2")),
    }
    one_container = len(xz(b"".join(raw.values()))) - sum(len(streams[s]) for s in SMALL_STREAMS)
    return {"bytes": len(data),
            "streams": {s: {"stored": len(v), **({"raw": len(raw[s])} if s in raw else {})}
                        for s, v in streams.items()},
            "other": len(data) - sum(len(streams[s]) for s in ("positions", "values", "counts", "tables")),
            "variants": {k: len(data) - dense_now + len(v) for k, v in variants.items()},
            "one container for the four lzma streams": len(data) + one_container}


def float16_accuracy(data: bytes) -> tuple[float, float]:
    """Test accuracy (%) of the decoded model as stored, and with its dense float tensors rounded to float16."""
    params = load_params()
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    model = decode_range(data)
    before = score(model, test)["accuracy"]
    sparse = {f"{name}.weight" for name, _ in prunable(model)}
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name not in sparse and t.is_floating_point():
                t.copy_(t.half().float())
    return before, score(model, test)["accuracy"]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, help="a range-coded model file (models/*.bin)")
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    if not data.startswith(RANGE_MAGIC):
        raise ValueError(f"{args.file}: not a range-coded model file (compress.coder: range writes those)")
    r = report(data)
    print(f"{args.file}: {r['bytes']:,} bytes, of which other (magic, lengths, header, dense tensors) "
          f"{r['other']:,}")
    for s, v in r["streams"].items():
        print(f"  {s:<10} {v['stored']:>8,} stored" + (f" ({v['raw']:,} raw)" if "raw" in v else ""))
    for k, v in {**r["variants"], "one container for the four lzma streams":
                 r["one container for the four lzma streams"]}.items():
        print(f"  {k:<48} {v:>8,} bytes ({v - r['bytes']:+,})")
    before, half = float16_accuracy(data)
    print(f"  test accuracy as stored {before:.2f}%, dense tensors in float16 {half:.2f}%")


if __name__ == "__main__":
    cli(main)
