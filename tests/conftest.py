"""Tiny configs and a synthetic MNIST-shaped dataset, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import copy
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages import prune, train
from stages.common import paths
from stages.common.config import Params, params_from_dict, replace
from stages.common.io import save_checkpoint
from stages.common.kernels import SWITCHES

# The first import of `stages` above put params.yaml's kernel switches into the environment, before torch
# loaded: every in-process test runs under the default kernels, as the stages' own processes do.

# A few thousand images, one short epoch, a net small enough to train in seconds.
TINY: dict[str, Any] = {
    "seed": 0,
    # One thread: the queue test runs two experiments at once on 2 cores (jobs x threads <= cores).
    "threads": 1,
    "kernels": "portable",
    "data": {"root": "data", "source": "auto", "train_limit": 2000, "test_limit": 500, "timeout_s": 2.0,
             "verify": True},
    "model": {"conv_channels": [4, 8], "hidden": [64, 32], "dropout": 0.1},
    # No zoom (max_scale 0): on the tiny net it made the CSR-vs-dense fine-tune comparison diverge; listed
    # because dvc.yaml names it for every stage that augments.
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.003, "weight_decay": 0.0005, "label_smoothing": 0.1,
              "max_shift": 1.0, "max_rotate": 5.0, "max_scale": 0.0},
    "prune": {"method": "global_l1", "amount": 0.8, "finetune_epochs": 1, "steps": 3, "ramp": 0.6,
              "lr": 0.001, "batch_size": 64},
    "channel": {"amount": 0.5, "finetune_epochs": 1, "steps": 2, "ramp": 0.5, "lr": 0.002, "batch_size": 64,
                "calibration_images": 200},
    "combine": {"amount": 0.5, "finetune_epochs": 1, "steps": 2, "ramp": 0.5, "lr": 0.002, "batch_size": 64},
    "evaluate": {"batch_size": 128, "latency_runs": 5, "throughput_batches": 2},
    "distill": {"student": {"conv_channels": [2, 4], "hidden": [16], "dropout": 0.0}, "epochs": 1,
                "batch_size": 64, "lr": 0.003, "temperature": 2.0, "alpha": 0.5},
    "compress": {"bits": 8},
    "bench": {"repeats": 2, "latency_runs": 5,
              "throughput_batches": 2, "batch_size": 64, "calibration_images": 200, "pipeline_images": 256},
}


ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """A shell's environment without the kernel switches (plus `extra`), with this checkout importable: what a
    fresh `python -m stages.<name>` starts from."""
    return {**{k: v for k, v in os.environ.items() if k not in SWITCHES}, "PYTHONPATH": str(ROOT), **extra}


def tiny_dict(**sections: dict[str, Any]) -> dict[str, Any]:
    """TINY with some keys overridden, e.g. tiny_dict(prune={"amount": 0.5})."""
    d = copy.deepcopy(TINY)
    for name, changes in sections.items():
        d[name].update(changes)
    return d


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 28x28 images whose class is a bright 8x8 square at one of 10 places, plus noise: learnable fast."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        r, c = 2 + 12 * (y // 5), 1 + 5 * (y % 5)
        images[i, r:r + 8, c:c + 8] = 255
    return images, labels


def write_idx(raw: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(images), 28, 28)
                                                     + images.tobytes())
    (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(2000, seed=1))
    write_idx(raw, "t10k", *synthetic_digits(500, seed=2))
    return root


@pytest.fixture
def tiny_params(synthetic_root: Path) -> Params:
    # Synthetic digits do not have MNIST's checksums.
    return params_from_dict(tiny_dict(data={"root": str(synthetic_root), "verify": False}))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, where the stages' relative output paths (models/, metrics/) land."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def pruned_params(tiny_params: Params, in_tmp: Path) -> Params:
    """A trained tiny model in models/, pruned one-shot to 90%; returns the params that pruned it."""
    model, _ = train.run(tiny_params)
    save_checkpoint(paths.DENSE_MODEL, model)
    params = replace(tiny_params, prune=replace(tiny_params.prune, finetune_epochs=0, amount=0.9))
    model, _, _ = prune.run(params, paths.DENSE_MODEL)
    save_checkpoint(paths.PRUNED_MODEL, model)
    return params
