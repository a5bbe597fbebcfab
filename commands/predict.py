"""Read the digit in your own image: `python -m commands predict DIGIT.png [--model models/...]`.

Not a pipeline stage. Takes a PNG or JPEG (any size, dark on light or light on dark), makes it look like an
MNIST digit the way MNIST's were made (LeCun et al.: the digit's bounding box scaled into 20x20 keeping its
aspect ratio, then placed in 28x28 with its centre of mass at the centre), and prints the digit and the ten
probabilities from any model file the pipeline writes (a .pth checkpoint, the compressed .bin or an ONNX
file from the export stage, run in onnxruntime).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from bignn import paths
from bignn.forms import load_model
from bignn.runtime import cli

# Refused before decoding: a small file can declare a huge canvas (a "pixel bomb"). 40 megapixels is a
# large photo; PIL's own guard is a warning up to ~89 MP.
MAX_PIXELS = 40_000_000
# Pixels with less ink than this fraction of the strongest stroke's are paper (grain, shadows, JPEG noise).
INK_THRESHOLD = 0.25


class ImageError(ValueError):
    """The file is not an image this command can read a digit from; the message says why."""


def read_grayscale(path: Path) -> np.ndarray:
    """The image as float32 in [0, 1]; transparent pixels count as white paper."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{path}: {img.width}x{img.height} pixels is more than {MAX_PIXELS:,} allowed")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(paper, rgba)
            return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable PNG/JPEG image ({exc})") from None
    except OSError as exc:  # truncated or corrupt data
        raise ImageError(f"{path}: the image data cannot be decoded ({exc})") from None


def to_mnist(gray: np.ndarray) -> torch.Tensor:
    """A (1, 1, 28, 28) tensor in [0, 1], light digit on dark, centred as MNIST's digits are."""
    # MNIST is white ink on black. The paper is whatever the border mostly is; ink is how far a pixel is from
    # it, towards black on light paper and towards white on dark paper.
    paper = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    ink = np.clip(paper - gray if paper > 0.5 else gray - paper, 0.0, None)
    if ink.max() < 0.1:
        raise ImageError("no digit found: the image is (nearly) one flat colour")
    ink /= ink.max()
    ink[ink < INK_THRESHOLD] = 0.0
    rows, cols = np.nonzero(ink)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
                       dtype=np.float32) / 255.0
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    # Shift so the centre of mass lands on the centre (LeCun's recipe), without pushing ink off the canvas.
    ys, xs = np.indices(canvas.shape)
    mass = canvas.sum()
    dy = int(round(13.5 - (ys * canvas).sum() / mass))
    dx = int(round(13.5 - (xs * canvas).sum() / mass))
    r, c = np.nonzero(canvas)
    dy = int(np.clip(dy, -r.min(), 27 - r.max()))
    dx = int(np.clip(dx, -c.min(), 27 - c.max()))
    canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return torch.from_numpy(np.clip(canvas, 0.0, 1.0)).reshape(1, 1, 28, 28)


def predict_file(image: Path, model_path: Path) -> torch.Tensor:
    """The ten class probabilities for the digit in `image`, from a checkpoint, a compressed .bin or an .onnx."""
    x = to_mnist(read_grayscale(image))
    if model_path.suffix == ".onnx":
        from bignn.export import run_logits, session  # onnxruntime only when asked for

        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: no such model file")
        logits = run_logits(session(model_path, threads=1), x)
    else:
        with torch.inference_mode():
            logits = load_model(model_path).eval()(x)
    return torch.softmax(logits, dim=1)[0]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", type=Path, help="a PNG or JPEG of one handwritten digit")
    ap.add_argument("--model", type=Path, default=paths.PRUNED_MODEL,
                    help=f"any model file the pipeline writes: .pth, .bin or .onnx (default {paths.PRUNED_MODEL})")
    args = ap.parse_args(argv)
    probs = predict_file(args.image, args.model)
    print(f"digit: {int(probs.argmax())}  ({float(probs.max()):.1%}, {args.model})")
    for digit, p in enumerate(probs.tolist()):
        print(f"  {digit}: {p:.4f}")


if __name__ == "__main__":
    cli(main)
