"""Last stage: measure every model the same way; write metrics/<name>.json and metrics/machine.json.

All models are measured in one process, one after the other. Each fresh process would cost a torch import
(seconds and ~900 MB) per model; memory is measured per model instead (its tensors plus one batch's
activations), and the machine every timing comes from is written beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import Split, split_of
from bignn.forms import load_model
from bignn.io import write_csv, write_json
from bignn.metrics import (
    accuracy_metrics,
    machine_metrics,
    memory_metrics,
    peak_rss_mb,
    size_metrics,
    speed_metrics,
)
from bignn.runtime import cli, seeded, setup
from bignn.training import prepare

MODELS = {"dense": paths.DENSE_MODEL, "pruned": paths.PRUNED_MODEL, "compressed": paths.COMPRESSED_MODEL,
          "channel": paths.CHANNEL_MODEL, "channel_int8": paths.CHANNEL_INT8_MODEL, "combined": paths.COMBINED_MODEL,
          "student": paths.STUDENT_MODEL}
# Every evaluated model's accuracy, bytes and batch-1 latency, one row each (the accuracy-per-byte plots).
FRONTIER = paths.MODELS_FRONTIER_CSV
# The misclassified test images (for `dvc plots`' confusion view) of these two only.
ERRORS = ("dense", "pruned")


def measure(params: Params, checkpoint: Path, test: Split) -> tuple[dict[str, float], list[int]]:
    """All metrics of one checkpoint, plus its predictions on the test set."""
    cfg = params.evaluate
    model = prepare(load_model(checkpoint))  # the layout the stages train and predict in
    acc, preds = accuracy_metrics(model, test, cfg.batch_size)
    metrics = {**acc, **size_metrics(model, checkpoint), **memory_metrics(model, test, cfg.batch_size),
               **speed_metrics(model, test, cfg.batch_size, cfg.latency_runs, cfg.throughput_batches)}
    return metrics, preds.tolist()


def run(params: Params, models: dict[str, Path] = MODELS) -> dict[str, Any]:
    """{"labels": [...], "machine": {...}, "models": {name: {"metrics": {...}, "preds": [...]}}}."""
    seeded(params.seed)
    test = split_of(params.data, train=False)
    out: dict[str, Any] = {"labels": test.labels.tolist(), "models": {}}
    for name, path in models.items():
        metrics, preds = measure(params, Path(path), test)
        out["models"][name] = {"metrics": metrics, "preds": preds}
        print(name, " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
    # The whole process's high-water mark, importing torch included: what a user's process pays.
    out["machine"] = {**machine_metrics(params.threads, params.kernels),
                      "evaluate_peak_rss_mb": round(peak_rss_mb(), 1)}
    return out


def main() -> None:
    params = load_params()
    setup(params.threads, params.kernels)
    result = run(params)
    for name, model in result["models"].items():
        write_json(paths.model_metrics(name), model["metrics"])
        if name in ERRORS:
            write_csv(paths.errors_csv(name), error_rows(result["labels"], model["preds"]))
    write_json(paths.MACHINE_METRICS, result["machine"])
    write_csv(FRONTIER, frontier_rows(result))


def error_rows(labels: list[int], preds: list[int]) -> list[dict[str, int]]:
    """The test images a model gets wrong, one (actual, predicted) row each, in test-set order."""
    return [{"actual": a, "predicted": p} for a, p in zip(labels, preds, strict=True) if a != p]


def frontier_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model for the accuracy-per-byte and per-millisecond plots (drawn on log axes:
    .dvc/plots/labelled_log_x.json)."""
    rows = []
    for name, model in result["models"].items():
        m = model["metrics"]
        rows.append({"model": name, "accuracy": m["accuracy"], "checkpoint_bytes": m["checkpoint_bytes"],
                     "latency_b1_ms": round(m["latency_b1_ms"], 4)})
    return rows


if __name__ == "__main__":
    cli(main)
