"""Measurements of one model, each a plain function returning a flat dict (merged by the evaluate stage)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .data import Split
from .model import prunable
from .training import predict, score_logits


def size_metrics(model: nn.Module, checkpoint: Path) -> dict[str, float]:
    weights = [m.weight for _, m in prunable(model)]
    w_total = sum(w.numel() for w in weights)
    w_nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    return {"params_total": sum(p.numel() for p in model.parameters()),
            "params_nonzero": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            # Over conv + linear weights: the set prune.amount refers to.
            "sparsity": 1 - w_nonzero / w_total,
            "checkpoint_bytes": checkpoint.stat().st_size}


def accuracy_metrics(model: nn.Module, test: Split, batch_size: int) -> tuple[dict[str, float], torch.Tensor]:
    logits = predict(model, test, batch_size)
    return score_logits(logits, test.labels), logits.argmax(1)


def median_seconds(fn: Callable[[], object], runs: int, warmup: int = 0) -> float:
    """Median wall time of `runs` calls of fn, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.inference_mode()
def speed_metrics(model: nn.Module, test: Split, batch_size: int, latency_runs: int,
                  throughput_batches: int) -> dict[str, float]:
    model.eval()
    one, batch = test.images[:1], test.images[:batch_size]
    latency = median_seconds(lambda: model(one), latency_runs, warmup=20)
    per_batch = median_seconds(lambda: model(batch), throughput_batches, warmup=2)
    return {"latency_b1_ms": 1000.0 * latency, "throughput_ips": len(batch) / per_batch}


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
