"""Does one model file beat another on the test set, or is the difference the test set's own noise?

    python -m commands compare models/dense.pth models/compressed.bin

Scores both files (any model file the pipeline writes: .pth, int8 .pth or compressed .bin) on the same test
images and counts the images one gets right and the other wrong (b and c). The difference of the two
accuracies has a standard error of sqrt(b + c) / N over draws of N test images from the same writers
(McNemar's test; the p-value is its exact two-sided one): the noise of a fixed test set, on top of a seed's.
Two good MNIST models disagree on a few dozen of the 10,000 test images, so a 0.1 pt difference between two
files is within two such errors whatever the seeds say (docs/smallest.md).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bignn.config import load_params
from bignn.data import split_of
from bignn.forms import load_model
from bignn.runtime import cli, setup
from bignn.training import predict


def agreement(right_a: torch.Tensor, right_b: torch.Tensor) -> dict[str, Any]:
    """Two models' per-image correctness (bool vectors over the same images): accuracies (%), b (only A
    right), c (only B right), A's lead in points with its standard error, and McNemar's exact p-value."""
    n = len(right_a)
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    k = min(b, c)
    p = min(1.0, 2 * sum(math.comb(b + c, i) for i in range(k + 1)) / 2 ** (b + c)) if b + c else 1.0
    return {"n": n, "accuracy_a": 100 * float(right_a.float().mean()),
            "accuracy_b": 100 * float(right_b.float().mean()), "only_a": b, "only_b": c,
            "lead": 100 * (b - c) / n, "stderr": 100 * math.sqrt(b + c) / n, "p": p}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="a model file")
    ap.add_argument("b", type=Path, help="another model file")
    args = ap.parse_args(argv)
    params = load_params()
    setup(params.threads, params.kernels)
    test = split_of(params.data, train=False)
    with torch.inference_mode():
        r = agreement(*(predict(load_model(f), test).argmax(1) == test.labels for f in (args.a, args.b)))
    print(f"{args.a}: {r['accuracy_a']:.2f}%  {args.b}: {r['accuracy_b']:.2f}%  on {r['n']:,} test images")
    print(f"right in one only: {r['only_a']} ({args.a.name}), {r['only_b']} ({args.b.name}); "
          f"{args.a.name} leads by {r['lead']:+.2f} ± {r['stderr']:.2f} pt (McNemar p = {r['p']:.3f})")


if __name__ == "__main__":
    cli(main)
