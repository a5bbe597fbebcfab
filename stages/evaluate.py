"""Last stage: measure every model the same way (bignn.metrics.measure); write metrics/<form>.json,
metrics/machine.json, the dense and pruned models' misclassified images and metrics/frontier.csv.

All models are measured in one process, one after the other. Each fresh process would cost a torch import
(seconds and ~900 MB) per model; memory is measured per model instead (its tensors plus one batch's
activations), and the machine every timing comes from is written beside them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import split_of
from bignn.forms import load_model
from bignn.io import write_csv, write_json
from bignn.metrics import error_rows, frontier_rows, machine_metrics, measure, peak_rss_mb
from bignn.runtime import cli, seeded, setup, use_device
from bignn.training import CPU, prepare

# The misclassified test images (for `dvc plots`' confusion view) of these two only.
ERRORS = ("dense", "pruned")


def run(params: Params, models: dict[str, Path] = paths.MODEL_FILES, device: torch.device = CPU,
        ) -> dict[str, Any]:
    """{"labels": [...], "machine": {...}, "models": {name: {"metrics": {...}, "preds": [...]}}}; the float
    models' accuracy measured on `device`, every timing on the CPU."""
    seeded(params.seed)
    test = split_of(params.data, train=False)
    out: dict[str, Any] = {"labels": test.labels.tolist(), "models": {}}
    for name, path in models.items():
        model = prepare(load_model(path))  # the layout the stages train and predict in
        metrics, preds = measure(model, Path(path), test, params.evaluate, device)
        out["models"][name] = {"metrics": metrics, "preds": preds}
        print(name, " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
    # The whole process's high-water mark, importing torch included: what a user's process pays.
    out["machine"] = {**machine_metrics(params.threads, params.kernels, device),
                      "evaluate_peak_rss_mb": round(peak_rss_mb(), 1)}
    return out


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    setup(params.threads, params.kernels)
    result = run(params, device=use_device(params.device))
    for name, model in result["models"].items():
        write_json(paths.model_metrics(name), model["metrics"])
        if name in ERRORS:
            write_csv(paths.errors_csv(name), error_rows(result["labels"], model["preds"]))
    write_json(paths.MACHINE_METRICS, result["machine"])
    write_csv(paths.MODELS_FRONTIER_CSV, frontier_rows({n: m["metrics"] for n, m in result["models"].items()}))
    write_json(paths.stage_metrics("evaluate"), {"stage_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    cli(main)
