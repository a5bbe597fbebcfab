"""export: ONNX files that onnxruntime runs to torch's predictions; predict reads them too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bignn import export as onnx_export
from bignn import paths
from bignn.config import Params
from bignn.data import load_split
from bignn.export import run_logits, session, to_onnx
from bignn.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from bignn.quantize import int8_bytes
from commands import predict
from stages import channel, export
from tests.test_predict import draw_seven


@pytest.fixture(scope="module")
def dense_onnx(pruned_files: Path) -> bytes:
    """The tiny dense model's ONNX file, exported once for the module: an export costs ~2 s of CPU."""
    return to_onnx(load_checkpoint(pruned_files / paths.DENSE_MODEL)[0].eval())


def test_onnx_runs_in_onnxruntime_as_in_torch(pruned_params: Params, tmp_path: Path, dense_onnx: bytes) -> None:
    out = export.run(pruned_params, {"dense": (paths.DENSE_MODEL, tmp_path / "d.onnx")})
    data, report = out["dense"]
    assert report["top1_agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-4
    assert report["onnxruntime"]["accuracy"] == report["torch"]["accuracy"] > 50
    assert set(report["onnxruntime"]) == set(report["torch"]) == {"accuracy", "latency_b1_ms", "throughput_ips"}
    assert report["onnxruntime"]["latency_b1_ms"] > 0 and report["onnx_bytes"] == len(data)
    model = load_checkpoint(paths.DENSE_MODEL)[0].eval()
    assert dense_onnx == data  # same bytes every time: DVC's hash of the file is stable
    # ... and in any checkout: no absolute path of this one inside (the exporter's stack traces carry them).
    assert str(Path(export.__file__).resolve().parents[1]).encode() not in data and b"model.py" not in data
    # ... nor where the model's class lives: moving the code does not change the file.
    assert b"bignn.model" not in data and b"BigCNN" in data
    # Any batch size, not only the example's.
    test = load_split(pruned_params.data.root, train=False, limit=7, verify=False)
    sess = session(data, threads=1)
    for n in (1, 7):
        with torch.inference_mode():
            expected = model(test.images[:n])
        assert torch.allclose(run_logits(sess, test.images[:n]), expected, atol=1e-4)


def test_an_export_that_predicts_other_digits_is_refused(pruned_params: Params, tmp_path: Path, dense_onnx: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "to_onnx", lambda model: dense_onnx)  # the check is under test, not the export
    monkeypatch.setattr(onnx_export, "run_logits",
                        lambda sess, images, batch_size: -run_logits(sess, images, batch_size))
    with pytest.raises(ValueError, match=r"dense.pth: onnxruntime disagrees with torch on \d"):
        export.run(pruned_params, {"dense": (paths.DENSE_MODEL, tmp_path / "d.onnx")})


def test_predict_reads_onnx_like_the_checkpoint(pruned_params: Params, tmp_path: Path, dense_onnx: bytes) -> None:
    onnx_path = tmp_path / "dense.onnx"
    onnx_path.write_bytes(dense_onnx)
    draw_seven((120, 90), (30, 10, 90, 80), dark_on_light=True, width=7).save(tmp_path / "d.png")
    from_onnx = predict.predict_file(tmp_path / "d.png", onnx_path)
    assert torch.allclose(from_onnx, predict.predict_file(tmp_path / "d.png", paths.DENSE_MODEL), atol=1e-5)
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match=r"bad.onnx: onnxruntime cannot load it \(.*INVALID_PROTOBUF"):
        predict.predict_file(tmp_path / "d.png", bad)
    with pytest.raises(FileNotFoundError, match="missing.onnx: no such model file"):
        predict.predict_file(tmp_path / "d.png", tmp_path / "missing.onnx")


def test_ort_int8_check_compares_onnxruntime_int8_with_torch_int8(pruned_params: Params) -> None:
    model, _ = channel.run(pruned_params)
    save_checkpoint(paths.CHANNEL_MODEL, model)
    atomic_write_bytes(paths.CHANNEL_INT8_MODEL, int8_bytes(channel.int8_copy(pruned_params, model), model.model_args))
    report = export.ort_int8_check(pruned_params)
    assert report["ort_int8"]["onnx_bytes"] < report["float"]["onnx_bytes"]
    for row in report.values():
        assert 0.5 < row["top1_agreement_with_torch_int8"] <= 1.0 and row["latency_b1_ms"] > 0
