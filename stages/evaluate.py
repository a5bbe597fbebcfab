"""Last stage: measure every model the same way; write metrics/<name>.json.

Each model is measured in a fresh process, so peak memory belongs to that model alone and one model's
warm caches do not speed up the next.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from stages.common import paths
from stages.common.compression import load_model
from stages.common.config import Params, load_params
from stages.common.data import load_split
from stages.common.io import write_csv, write_json
from stages.common.metrics import accuracy_metrics, peak_rss_mb, size_metrics, speed_metrics
from stages.common.runtime import cli, seed_everything

MODELS = {"dense": paths.DENSE_MODEL, "pruned": paths.PRUNED_MODEL, "compressed": paths.COMPRESSED_MODEL,
          "student": paths.STUDENT_MODEL, "student_scratch": paths.SCRATCH_MODEL}
# Confusion matrices (for `dvc plots`) of these two only.
CONFUSION = ("dense", "pruned")


def measure(params: Params, checkpoint: Path) -> tuple[dict[str, float], list[int], list[int]]:
    """All metrics of one checkpoint, plus (labels, predictions) on the test set."""
    seed_everything(params.seed, params.threads)
    cfg = params.evaluate
    test = load_split(params.data.root, train=False, limit=params.data.test_limit,
                      verify=params.data.verify)
    model = load_model(checkpoint)
    acc, preds = accuracy_metrics(model, test, cfg.batch_size)
    metrics = {**acc, **size_metrics(model, checkpoint),
               **speed_metrics(model, test, cfg.batch_size, cfg.latency_runs, cfg.throughput_batches)}
    # The whole process's high-water mark: importing torch is most of it, which is what a user pays too.
    metrics["peak_rss_mb"] = peak_rss_mb()
    return metrics, test.labels.tolist(), preds.tolist()


def measure_in_fresh_process(params: Params, checkpoint: Path) -> tuple[dict[str, float], list[int], list[int]]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, params, checkpoint).result()


def run(params: Params, models: dict[str, Path] = MODELS) -> dict[str, dict[str, Any]]:
    """{name: {"metrics": {...}, "labels": [...], "preds": [...]}} for each checkpoint."""
    out = {}
    for name, path in models.items():
        metrics, labels, preds = measure_in_fresh_process(params, Path(path))
        out[name] = {"metrics": metrics, "labels": labels, "preds": preds}
        print(name, " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
    return out


def main() -> None:
    params = load_params()
    for name, result in run(params).items():
        write_json(paths.METRICS_DIR / f"{name}.json", result["metrics"])
        if name in CONFUSION:
            write_csv(paths.METRICS_DIR / f"confusion_{name}.csv",
                      [{"actual": a, "predicted": p} for a, p in zip(result["labels"], result["preds"], strict=True)])


if __name__ == "__main__":
    cli(main)
