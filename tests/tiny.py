"""The tiny configs of the tests: params.yaml with a few thousand images, one short epoch, a net small enough to
train in seconds. No torch here: the session's tiny repo is built by a process of its own
(`python -m tests.dvc_repo`), which would pay 2 s of CPU for importing it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The committed params.yaml (composed from conf/): every test config starts from it and overrides only what it
# changes, so no test runs a recipe of its own by accident.
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())

# A few thousand images, one short epoch, a net small enough to train in seconds.
TINY_CHANGES: dict[str, Any] = {
    "threads": 1,
    "data": {"train_limit": 2000, "test_limit": 500, "timeout_s": 2.0},
    "model": {"conv_channels": [4, 8], "hidden": [64, 32], "dropout": 0.1},
    # No zoom (max_scale 0): on the tiny net it made the CSR-vs-dense fine-tune comparison diverge.
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.003, "max_shift": 1.0, "max_rotate": 5.0, "max_scale": 0.0},
    "prune": {"method": "global_l1", "amount": 0.8, "finetune_epochs": 1, "steps": 3, "ramp": 0.6,
              "lr": 0.001, "batch_size": 64, "schedule": "cosine", "dropout": True, "augment": 1.0},
    "channel": {"amount": 0.5, "finetune_epochs": 1, "steps": 2, "ramp": 0.5, "lr": 0.002, "batch_size": 64,
                "calibration_images": 200, "schedule": "onecycle", "dropout": True, "augment": 1.0},
    "combine": {"amount": 0.5, "finetune_epochs": 1, "steps": 2, "ramp": 0.5, "lr": 0.002, "batch_size": 64,
                "schedule": "cosine", "dropout": True, "augment": 1.0},
    "evaluate": {"batch_size": 128, "latency_runs": 5, "throughput_batches": 2},
    "distill": {"student": {"conv_channels": [2, 4], "hidden": [16], "dropout": 0.0}, "epochs": 1,
                "batch_size": 64, "lr": 0.003, "temperature": 2.0, "alpha": 0.5},
    "compress": {"bits": 8, "quantizer": "uniform", "coder": "lzma"},
    "bench": {"repeats": 2, "latency_runs": 5,
              "throughput_batches": 2, "batch_size": 64, "calibration_images": 200, "pipeline_images": 256},
}


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) else value
    return out


TINY = _merged(PARAMS, TINY_CHANGES)


def tiny_dict(**sections: dict[str, Any]) -> dict[str, Any]:
    """TINY with some keys overridden, e.g. tiny_dict(prune={"amount": 0.5})."""
    return _merged(TINY, sections)
