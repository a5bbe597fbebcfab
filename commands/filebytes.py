"""Where the bytes of a range-coded model file go (not a stage).

    python -m commands filebytes models/combined.bin
    python -m commands filebytes models/compressed.bin

Prints the file's three stored streams (the lzma container of the small parts, the range-coded positions and
values), then each small part raw and compressed alone (header, per-line nonzero counts, codebooks and
histograms, dense tensors), so a reader sees what a model of a few thousand weights pays besides its weights.
The format is bignn/compression.py's.
"""

from __future__ import annotations

import argparse
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bignn.compression import RANGE_MAGIC, RANGE_STREAMS, SMALL_PARTS, read_range_parts, unpack, xz
from bignn.runtime import cli


def report(data: bytes) -> dict[str, Any]:
    """Stored bytes of every stream (they and the magic and lengths add up to the file), and each small part's
    raw bytes and bytes compressed alone."""
    streams = unpack(memoryview(data)[len(RANGE_MAGIC):], RANGE_STREAMS, "file")
    small, _ = read_range_parts(data)
    return {"bytes": len(data), "streams": {s: len(v) for s, v in streams.items()},
            "small": {s: {"raw": len(small[s]), "alone": len(xz(small[s]))} for s in SMALL_PARTS},
            "container_raw": len(lzma.decompress(streams["small"]))}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, help="a range-coded model file (models/*.bin)")
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    if not data.startswith(RANGE_MAGIC):
        raise ValueError(f"{args.file}: not a range-coded model file of this version (compress.coder: range "
                         "writes those)")
    r = report(data)
    print(f"{args.file}: {r['bytes']:,} bytes ({len(RANGE_MAGIC) + 8 * len(r['streams'])} of magic and lengths)")
    for s, n in r["streams"].items():
        print(f"  {s:<10} {n:>8,} stored" + (f" ({r['container_raw']:,} raw)" if s == "small" else ""))
    for s, v in r["small"].items():
        print(f"    {s:<8} {v['raw']:>8,} raw, {v['alone']:>7,} compressed alone")


if __name__ == "__main__":
    cli(main)
