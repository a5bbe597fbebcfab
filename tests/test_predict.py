"""predict: a user's digit image of any size and polarity becomes an MNIST-like input; bad files get one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from bignn import paths
from bignn.config import Params
from bignn.io import load_checkpoint
from commands import predict

ROOT = Path(__file__).resolve().parents[1]


def draw_seven(size: tuple[int, int], box: tuple[int, int, int, int], dark_on_light: bool, width: int) -> Image.Image:
    """A hand-drawn-looking 7 in `box` (left, top, right, bottom) of a canvas of `size`."""
    paper, ink = (255, 0) if dark_on_light else (0, 255)
    img = Image.new("L", size, paper)
    left, top, right, bottom = box
    d = ImageDraw.Draw(img)
    d.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], fill=ink, width=width)
    d.line([(left + (right - left) // 4, (top + bottom) // 2), (right - (right - left) // 6, (top + bottom) // 2)],
           fill=ink, width=width)
    return img


def _mass_centre(x: torch.Tensor) -> tuple[float, float]:
    img = x[0, 0].numpy()
    ys, xs = np.indices(img.shape)
    return float((ys * img).sum() / img.sum()), float((xs * img).sum() / img.sum())


def test_any_size_place_and_polarity_give_the_same_centred_digit(tmp_path: Path) -> None:
    small = draw_seven((60, 60), (10, 8, 40, 52), dark_on_light=False, width=5)
    big = draw_seven((900, 500), (500, 40, 800, 480), dark_on_light=True, width=45)
    xs = []
    for name, img in (("small.png", small), ("big.jpg", big)):
        img.save(tmp_path / name)
        x = predict.to_mnist(predict.read_grayscale(tmp_path / name))
        assert x.shape == (1, 1, 28, 28) and float(x.min()) >= 0 and float(x.max()) == pytest.approx(1, abs=0.05)
        cy, cx = _mass_centre(x)
        assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
        rows, cols = np.nonzero(x[0, 0].numpy() > 0.3)
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (19, 20, 21)  # the 20x20 box
        # MNIST's polarity: the corners are background (0), whatever the paper was.
        assert float(x[0, 0, 0, 0]) == 0 and float(x[0, 0, -1, -1]) == 0
        xs.append(x)
    # The same shape drawn at 60 px light-on-dark and at 900 px dark-on-light (JPEG) ends up nearly the same.
    assert float((xs[0] - xs[1]).abs().mean()) < 0.08


def test_prediction_does_not_depend_on_how_the_digit_was_saved(pruned_params: Params, tmp_path: Path) -> None:
    """The file path (read, invert, crop, scale, centre, model) gives the model's answer on the MNIST form."""
    model = load_checkpoint(paths.PRUNED_MODEL)[0].eval()
    base = draw_seven((28, 28), (6, 4, 21, 23), dark_on_light=False, width=2)
    with torch.inference_mode():
        expected = torch.softmax(model(predict.to_mnist(np.asarray(base, dtype=np.float32) / 255)), 1)[0]
    inverted = Image.eval(base.resize((280, 280), Image.Resampling.NEAREST), lambda v: 255 - v)
    canvas = Image.new("L", (500, 400), 255)
    canvas.paste(inverted, (150, 60))
    canvas.save(tmp_path / "seven.png")
    probs = predict.predict_file(tmp_path / "seven.png", paths.PRUNED_MODEL)
    assert probs.sum() == pytest.approx(1, abs=1e-5)
    assert int(probs.argmax()) == int(expected.argmax())
    assert float((probs - expected).abs().max()) < 0.1


def test_cli_prints_the_digit_and_ten_probabilities(pruned_params: Params, tmp_path: Path) -> None:
    draw_seven((100, 100), (20, 10, 80, 90), dark_on_light=True, width=8).save(tmp_path / "d.png")
    model = Path.cwd() / paths.PRUNED_MODEL  # pruned_params works in a temporary folder
    out = subprocess.run([sys.executable, "-m", "commands", "predict", str(tmp_path / "d.png"), "--model", str(model)],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.splitlines()
    probs = [float(line.split(":")[1]) for line in out[1:]]
    assert len(probs) == 10 and sum(probs) == pytest.approx(1, abs=1e-3)
    assert out[0].startswith(f"digit: {int(np.argmax(probs))} ")


def _bomb(path: Path) -> None:
    Image.new("1", (8000, 8000)).save(path)  # 64 megapixels in a few kilobytes


def _truncated(path: Path) -> None:
    draw_seven((200, 200), (20, 20, 180, 180), True, 10).save(path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("not an image"), "not a readable PNG/JPEG"),
    (lambda p: Image.new("L", (50, 50), 255).save(p), "no digit found"),
    (_bomb, "pixels is more than"),
    (_truncated, "cannot be decoded"),
    (lambda p: None, "no such file"),
])
def test_bad_images_fail_with_one_line(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "digit.png"
    make(path)
    with pytest.raises(predict.ImageError, match=message):
        predict.to_mnist(predict.read_grayscale(path))


def test_cli_bad_image_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not an image")
    res = subprocess.run([sys.executable, "-m", "commands", "predict", str(tmp_path / "x.png")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and "x.png" in res.stderr
