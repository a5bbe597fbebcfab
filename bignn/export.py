"""ONNX: the deployable form of the dense models, run by a second engine (onnxruntime) to check it."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from torch import nn

from bignn.config import EvaluateConfig
from bignn.data import Split
from bignn.metrics import speed_metrics, speed_of
from bignn.model import BigCNN, relu_before_pool
from bignn.training import predict, prepare, score_logits

# ONNX opset of the export; onnxruntime 1.32 runs up to 23.
OPSET = 18
STACK_TRACE = "pkg.torch.onnx.stack_trace"


def to_onnx(model: nn.Module) -> bytes:
    """The model (eval mode, float32, any batch size) as ONNX bytes, through torch.export (the exporter torch
    recommends since 2.9; the TorchScript one is deprecated). The bytes are the same on every call."""
    model = (relu_before_pool(copy.deepcopy(model)) if isinstance(model, BigCNN) else model).eval()
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1)
    # The exporter prints its progress and warns about its own internals; nothing a user can act on.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=["image"], output_names=["logits"],
                                    dynamic_shapes=({0: batch},), optimize=True)
    proto = program.model_proto
    # The exporter records each node's Python stack trace, with absolute file paths, and the model's class by
    # its module path: the same model exported from another checkout, or after the code moved, would get other
    # bytes. Stack traces go; the class keeps its bare name.
    where = f"{type(model).__module__}.{type(model).__qualname__}"
    for node in proto.graph.node:
        kept = [(p.key, p.value.replace(where, type(model).__qualname__)) for p in node.metadata_props
                if p.key != STACK_TRACE]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def session(model: bytes | str | Path, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with the pipeline's thread count (one inter-op thread: a chain of layers)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.NoSuchFile, ort_errors.InvalidGraph,
            ort_errors.InvalidArgument) as exc:  # plain Exception subclasses, not OSError/ValueError
        what = "the exported bytes" if isinstance(model, bytes) else str(model)
        raise ValueError(f"{what}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from exc


def run_logits(sess: ort.InferenceSession, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits of an (N, 1, 28, 28) float tensor, in batches."""
    x = np.ascontiguousarray(images.numpy(), dtype=np.float32)
    name = sess.get_inputs()[0].name
    return torch.from_numpy(np.concatenate([sess.run(None, {name: x[i:i + batch_size]})[0]
                                            for i in range(0, len(x), batch_size)]))


def ort_int8(data: bytes, calibration: torch.Tensor, batch_size: int = 250) -> bytes:
    """onnxruntime's own static int8 of a float ONNX model (QDQ format, per-channel int8 weights, uint8
    activations with ranges from the calibration images)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = calibration.numpy()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        # It logs "consider pre-processing before quantization" (shape inference): this model's shapes are static.
        logging.disable(logging.WARNING)
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()


def compare(model: nn.Module, test: Split, cfg: EvaluateConfig, threads: int) -> tuple[bytes, dict[str, Any]]:
    """The ONNX bytes of a float model and how onnxruntime's run of them compares with torch's: top-1
    agreement, the largest logit difference, and each engine's accuracy and speed (evaluate's keys)."""
    data = to_onnx(model)
    sess = session(data, threads)
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


def compare_int8(float_data: bytes, torch_int8: nn.Module, calibration: torch.Tensor, test: Split,
                 cfg: EvaluateConfig, threads: int) -> dict[str, Any]:
    """onnxruntime's static int8 of a float ONNX model against torch's int8 of the same model: top-1 agreement
    over the test set, accuracy and speed of both ONNX forms."""
    reference = predict(torch_int8, test, cfg.batch_size)
    report: dict[str, Any] = {}
    for name, data in (("float", float_data), ("ort_int8", ort_int8(float_data, calibration))):
        sess = session(data, threads)
        logits = run_logits(sess, test.images, cfg.batch_size)
        agree = (logits.argmax(1) == reference.argmax(1)).float().mean().item()
        report[name] = {"onnx_bytes": len(data), "accuracy": score_logits(logits, test.labels)["accuracy"],
                        "top1_agreement_with_torch_int8": agree,
                        **speed_of(lambda x, s=sess: s.run(None, {"image": x.numpy()}), test, cfg.batch_size,
                                   cfg.latency_runs, cfg.throughput_batches)}
    return report
