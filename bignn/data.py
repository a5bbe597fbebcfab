"""MNIST as in-memory tensors, plus batch augmentation.

60k 28x28 digits are 47 MB as uint8: holding them in memory and slicing batches is several times
faster on 2 cores than a DataLoader that decodes one PIL image at a time.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

RAW_FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32 N x 1 x 28 x 28 in [0, 1]
    labels: torch.Tensor  # int64 N

    def __len__(self) -> int:
        return len(self.labels)


class DataError(ValueError):
    """MNIST files that are not the canonical ones (truncated, corrupted or replaced)."""


def verify_files(raw: Path, names: list[str]) -> None:
    for name in names:
        digest = hashlib.md5((raw / name).read_bytes()).hexdigest()
        if digest != RAW_FILES[name]:
            raise DataError(f"{raw / name} is truncated or corrupted (MD5 {digest}, expected {RAW_FILES[name]}): "
                            "restore it with `dvc checkout data/MNIST/raw` or `dvc repro download`")


def read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX file (LeCun's MNIST format: magic 0x0000080N, N big-endian sizes, then the bytes).

    Read here rather than through torchvision's MNIST class: importing torchvision costs every stage
    process about 2 s, for a 10-line format.
    """
    data = path.read_bytes()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or not 1 <= data[3] <= 3:
        raise DataError(f"{path} is not a uint8 IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    if len(body) != math.prod(dims):
        raise DataError(f"{path} holds {len(body)} bytes of data, its header says {math.prod(dims)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_split(root: str | Path, train: bool, limit: int = 0, verify: bool = True) -> Split:
    """Read the IDX files written by the download stage; limit > 0 keeps the first `limit` images.

    verify checks both files of the split against the canonical MD5s first (0.1 s), so a damaged file
    fails here with its name instead of deep inside the reader or, worse, trains on bad pixels.
    """
    raw = Path(root) / "MNIST" / "raw"
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{raw / missing[0]} is missing: run `dvc repro download` first")
    if verify:
        prefix = "train" if train else "t10k"
        verify_files(raw, [name for name in RAW_FILES if name.startswith(prefix)])
    prefix = "train" if train else "t10k"
    images = read_idx(raw / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{raw}: {prefix} images {images.shape} and labels {labels.shape} do not match")
    if limit:
        images, labels = images[:limit], labels[:limit]
    return Split(torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0),
                 torch.from_numpy(labels.astype(np.int64)))


def augment(x: torch.Tensor, max_shift: float, max_rotate: float, gen: torch.Generator,
            max_scale: float = 0.0, elastic: float = 0.0, elastic_sigma: float = 4.0) -> torch.Tensor:
    """Random rotation, translation and (with max_scale) zoom by a factor in [1 - max_scale, 1 + max_scale] per
    image, in one affine warp for the whole batch; with `elastic` > 0 each image is also bent by its own smooth
    random field (elastic_offsets), in the same warp."""
    if max_shift == 0 and max_rotate == 0 and max_scale == 0 and elastic == 0:
        return x
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_rotate)
    # affine_grid works in [-1, 1] coordinates, where 14 px is 1.0.
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (max_shift / 14.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    if max_scale > 0:  # drawn last, and only when asked: without zoom the random stream is what it always was
        # theta maps output to input coordinates: dividing by the zoom factor enlarges the digit by it.
        zoom = 1 + (torch.rand(n, generator=gen) * 2 - 1) * max_scale
        cos, sin = cos / zoom, sin / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    # Drawn on the CPU generator whatever the device (the same batches on a GPU), then moved to the images.
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    if elastic > 0:  # drawn after the affine draws, so without it the stream is unchanged
        grid = grid + elastic_offsets(n, x.shape[-2], x.shape[-1], elastic, elastic_sigma, gen).to(x.device)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_rows(size: int, sigma: float) -> torch.Tensor:
    """size x size matrix whose row i holds a normalized Gaussian centred on i: M @ v blurs v along one axis."""
    pos = torch.arange(size, dtype=torch.float32)
    w = torch.exp(-0.5 * ((pos[:, None] - pos[None, :]) / sigma) ** 2)
    return w / w.sum(1, keepdim=True)


def elastic_offsets(n: int, height: int, width: int, alpha: float, sigma: float,
                    gen: torch.Generator) -> torch.Tensor:
    """Simard et al. 2003's elastic distortion as n x height x width x 2 offsets for grid_sample: uniform noise in
    [-1, 1] per pixel and axis, smoothed by a Gaussian of `sigma` px, times `alpha` px. sigma 4 and alpha 34 are
    theirs (a pixel moves about 2 px on average, smoothly varying across the digit). The blur is two matrix
    products: under kernels: portable they go through oneDNN's fixed-order product (bignn/matmul.py), as the
    affine grid's do, so the field has the same bits on every CPU (tests/test_portable_bytes.py)."""
    noise = torch.rand(n, 2, height, width, generator=gen) * 2 - 1
    field = _gaussian_rows(height, sigma) @ noise @ _gaussian_rows(width, sigma).T
    # Pixels to grid units (2 / size per pixel); grid_sample's last axis is (x, y).
    scale = torch.tensor([2.0 / width, 2.0 / height]) * alpha
    return field.permute(0, 2, 3, 1) * scale


def split_of(cfg: Any, train: bool, limit: int | None = None) -> Split:
    """The train or test split that the data section `cfg` names (its train_limit or test_limit, or `limit`)."""
    default = cfg.train_limit if train else cfg.test_limit
    return load_split(cfg.root, train=train, limit=default if limit is None else limit, verify=cfg.verify)
