"""Stage: ONNX files of the models worth deploying, each checked by a second engine, onnxruntime.

For the dense model, the channel-pruned one and the student: export, run all test images through onnxruntime
and through torch, compare the top-1 predictions and the logits, and time both engines the way evaluate times
a model (batch-1 latency, batch-256 throughput, same keys). The pruned model is not exported: ONNX stores its
zeros as dense tensors and onnxruntime multiplies them (its sparse initializers are densified on load), so the
file and the speed would be the dense model's; the compressed .bin is the sparse model's deployable form. Nor
is the int8 model: torch.export cannot trace torch.ao's packed int8 weights, and onnxruntime's own static int8
of the channel ONNX (`python -m stages export --ort-int8`, which only measures) agreed with torch's int8 on
fewer than 99.9% of the test images and ran slower than its float (docs/deploy.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import Split, split_of
from bignn.export import ort_int8, run_logits, session, to_onnx
from bignn.forms import load_model
from bignn.io import atomic_write_bytes, load_checkpoint, write_json
from bignn.metrics import speed_metrics, speed_of
from bignn.runtime import cli, seeded, setup
from bignn.training import predict, prepare, score_logits

EXPORTS = {"dense": (paths.DENSE_MODEL, paths.DENSE_ONNX), "channel": (paths.CHANNEL_MODEL, paths.CHANNEL_ONNX),
           "student": (paths.STUDENT_MODEL, paths.STUDENT_ONNX)}


def check(params: Params, checkpoint: Path, test: Split) -> tuple[bytes, dict[str, Any]]:
    """The ONNX bytes of one checkpoint and how onnxruntime's run of them compares with torch's."""
    cfg = params.evaluate
    model, _ = load_checkpoint(checkpoint)
    data = to_onnx(model)
    sess = session(data, params.threads)
    name = sess.get_inputs()[0].name
    ort_logits = run_logits(sess, test.images, cfg.batch_size)
    model = prepare(model)  # the layout evaluate measures torch in
    torch_logits = predict(model, test, cfg.batch_size)
    agree = (ort_logits.argmax(1) == torch_logits.argmax(1)).sum().item()
    report = {"onnx_bytes": len(data), "top1_agreement": agree / len(test),
              "max_abs_logit_diff": (ort_logits - torch_logits).abs().max().item(),
              "onnxruntime": {"accuracy": score_logits(ort_logits, test.labels)["accuracy"],
                              # .numpy() shares the tensor's memory: no copy inside the timed call.
                              **speed_of(lambda x: sess.run(None, {name: x.numpy()}), test, cfg.batch_size,
                                         cfg.latency_runs, cfg.throughput_batches)},
              "torch": {"accuracy": score_logits(torch_logits, test.labels)["accuracy"],
                        **speed_metrics(model, test, cfg.batch_size, cfg.latency_runs, cfg.throughput_batches)}}
    return data, report


def run(params: Params, exports: dict[str, tuple[Path, Path]] = EXPORTS) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """{name: (onnx bytes, report)} for each (checkpoint, onnx path) in exports."""
    seeded(params.seed)
    test = split_of(params.data, train=False)
    out = {}
    for name, (checkpoint, _) in exports.items():
        data, report = check(params, checkpoint, test)
        if report["top1_agreement"] < 1.0:
            # A float model must predict the same digits in both engines; anything else is an export bug.
            raise ValueError(f"{checkpoint}: onnxruntime disagrees with torch on "
                             f"{1 - report['top1_agreement']:.2%} of the test images")
        out[name] = (data, report)
        print(name, report, flush=True)
    return out


def ort_int8_check(params: Params) -> dict[str, Any]:
    """onnxruntime's static int8 of the channel model's ONNX against torch's int8 of the same model: top-1
    agreement over the test set, accuracy and speed of both ONNX forms."""
    cfg = params.evaluate
    seeded(params.seed)
    test = split_of(params.data, train=False)
    calibration = split_of(params.data, train=True, limit=params.channel.calibration_images).images
    float_data = to_onnx(load_checkpoint(paths.CHANNEL_MODEL)[0])
    torch_int8 = predict(load_model(paths.CHANNEL_INT8_MODEL), test, cfg.batch_size)
    report: dict[str, Any] = {}
    for name, data in (("float", float_data), ("ort_int8", ort_int8(float_data, calibration))):
        sess = session(data, params.threads)
        logits = run_logits(sess, test.images, cfg.batch_size)
        agree = (logits.argmax(1) == torch_int8.argmax(1)).float().mean().item()
        report[name] = {"onnx_bytes": len(data), "accuracy": score_logits(logits, test.labels)["accuracy"],
                        "top1_agreement_with_torch_int8": agree,
                        **speed_of(lambda x, s=sess: s.run(None, {"image": x.numpy()}), test, cfg.batch_size,
                                   cfg.latency_runs, cfg.throughput_batches)}
    return report


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ort-int8", action="store_true",
                    help="instead: measure onnxruntime's static int8 of the channel ONNX; writes nothing")
    args = ap.parse_args(argv)
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
                                      "onnxruntime_version": ort.__version__})


if __name__ == "__main__":
    cli(main)
