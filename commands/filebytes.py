"""Where the bytes of a range-coded model file go (not a stage).

    python -m commands filebytes models/combined.bin
    python -m commands filebytes models/compressed.bin

Prints the file's parts in file order: magic, header (what rebuilds the model: widths, bits, coding axes, the
streams' lengths), the range-coded positions (which lines are used, their counts, the gaps) and values (each
layer's histogram, then its codebook indices), the tables (codebooks or row scales) and the dense tensors
(biases, folded batch norms), so a reader sees what a model of a few thousand weights pays besides its
weights. The format is bignn/compression.py's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bignn.compression import RANGE_MAGIC, RANGE_PARTS, read_range_parts
from bignn.runtime import cli


def report(data: bytes) -> dict[str, Any]:
    """Bytes of the magic and of every part (they add up to the file), and the header as read."""
    header, parts = read_range_parts(data)
    return {"bytes": len(data), "parts": {"magic": len(RANGE_MAGIC), **{s: len(parts[s]) for s in RANGE_PARTS}},
            "header": header}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, help="a range-coded model file (models/*.bin)")
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    if not data.startswith(RANGE_MAGIC):
        raise ValueError(f"{args.file}: not a range-coded model file of this version (compress.coder: range "
                         "writes those)")
    r = report(data)
    h = r["header"]
    print(f"{args.file}: {r['bytes']:,} bytes; {h['model_args']}, {h['bits']}-bit {h['quantizer']}, "
          f"tables in {'float32' if h['tables'] == 'f4' else 'float16'}")
    for s, n in r["parts"].items():
        print(f"  {s:<10} {n:>8,}")


if __name__ == "__main__":
    cli(main)
