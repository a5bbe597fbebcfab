"""Stage: ONNX files of the models worth deploying, each checked by a second engine, onnxruntime.

For the dense model, the channel-pruned one and the student: export, run all test images through onnxruntime
and through torch, compare the top-1 predictions and the logits, and time both engines the way evaluate times
a model (bignn.export.compare). The pruned model is not exported: ONNX stores its zeros as dense tensors and
onnxruntime multiplies them (its sparse initializers are densified on load), so the file and the speed would
be the dense model's; the compressed .bin is the sparse model's deployable form. Nor is the int8 model:
torch.export cannot trace torch.ao's packed int8 weights, and onnxruntime's own static int8 of the channel
ONNX (`python -m stages export --ort-int8`, which only measures) agreed with torch's int8 on fewer than 99.9%
of the test images and ran slower than its float (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.export import compare, compare_int8, to_onnx
from bignn.forms import load_model
from bignn.io import atomic_write_bytes, load_checkpoint, write_json
from bignn.runtime import cli, seeded, setup

EXPORTS = {"dense": (paths.DENSE_MODEL, paths.DENSE_ONNX), "channel": (paths.CHANNEL_MODEL, paths.CHANNEL_ONNX),
           "student": (paths.STUDENT_MODEL, paths.STUDENT_ONNX)}


def run(params: Params, exports: dict[str, tuple[Path, Path]] = EXPORTS) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """{name: (onnx bytes, report)} for each (checkpoint, onnx path) in exports."""
    seeded(params.seed)
    test = split_of(params.data, train=False)
    out = {}
    for name, (checkpoint, _) in exports.items():
        data, report = compare(load_checkpoint(checkpoint)[0], test, params.evaluate, params.threads)
        if report["top1_agreement"] < 1.0:
            # A float model must predict the same digits in both engines; anything else is an export bug.
            raise ValueError(f"{checkpoint}: onnxruntime disagrees with torch on "
                             f"{1 - report['top1_agreement']:.2%} of the test images")
        out[name] = (data, report)
        print(name, report, flush=True)
    return out


def ort_int8_check(params: Params) -> dict[str, Any]:
    seeded(params.seed)
    calibration = split_of(params.data, train=True, limit=params.channel.calibration_images).images
    return compare_int8(to_onnx(load_checkpoint(paths.CHANNEL_MODEL)[0]), load_model(paths.CHANNEL_INT8_MODEL),
                        calibration, split_of(params.data, train=False), params.evaluate, params.threads)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ort-int8", action="store_true",
                    help="instead: measure onnxruntime's static int8 of the channel ONNX; writes nothing")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    if args.ort_int8:
        for name, row in ort_int8_check(params).items():
            print(name, " ".join(f"{k}={v:.4g}" for k, v in row.items()))
        return
    results = run(params)
    for name, (data, _) in results.items():
        atomic_write_bytes(EXPORTS[name][1], data)
    write_json(paths.EXPORT_METRICS, {**{name: report for name, (_, report) in results.items()},
                                      "onnxruntime_version": ort.__version__,
                                      "stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
