"""Measurements of one model, each a plain function returning a flat dict (merged by the evaluate stage)."""

from __future__ import annotations

import ctypes
import gc
import io
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
from torch import nn

from bignn.data import Split
from bignn.model import prunable
from bignn.training import CPU, predict, score_logits


def _quantized(m: nn.Module) -> bool:
    """An int8 conv or linear layer of torch.ao (its weight and bias are methods, not parameters)."""
    from torch.ao.nn import quantized

    return isinstance(m, (quantized.Conv2d, quantized.Linear))


def weights_and_params(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(conv and linear weights, all parameters) of a float or an int8 model; int8 values as their integers."""
    weights = [m.weight.detach() for _, m in prunable(model)]
    params = [p.detach() for p in model.parameters()]
    for m in filter(_quantized, model.modules()):
        weights.append(m.weight().int_repr())
        params += [weights[-1]] + ([m.bias().detach()] if m.bias() is not None else [])
    return weights, params


def size_metrics(model: nn.Module, checkpoint: Path) -> dict[str, float]:
    weights, params = weights_and_params(model)
    w_total = sum(w.numel() for w in weights)
    w_nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    return {"params_total": sum(p.numel() for p in params),
            "params_nonzero": sum(int(torch.count_nonzero(p)) for p in params),
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


def speed_of(forward: Callable[[torch.Tensor], object], test: Split, batch_size: int, latency_runs: int,
             throughput_batches: int) -> dict[str, float]:
    """Batch-1 latency and batch-`batch_size` throughput of any forward function (a torch model, an
    onnxruntime session), each the median of its runs after untimed warm-up ones."""
    one, batch = test.images[:1], test.images[:batch_size]
    latency = median_seconds(lambda: forward(one), latency_runs, warmup=20)
    per_batch = median_seconds(lambda: forward(batch), throughput_batches, warmup=2)
    return {"latency_b1_ms": 1000.0 * latency, "throughput_ips": len(batch) / per_batch}


@torch.inference_mode()
def speed_metrics(model: nn.Module, test: Split, batch_size: int, latency_runs: int,
                  throughput_batches: int) -> dict[str, float]:
    return speed_of(model.eval(), test, batch_size, latency_runs, throughput_batches)


def serialized_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1))


def activation_peak_mb(model: nn.Module, batch: torch.Tensor, runs: int = 3) -> float:
    """Extra resident memory while the model runs one batch (median of `runs`).

    Linux: hand freed heap memory back to the OS first (else the batch reuses it and looks free), reset the
    kernel's high-water mark to the current RSS ("5" > clear_refs), run, read the new mark. Elsewhere: how far
    the process's peak rises during the batch, a lower bound (0 when an earlier peak was higher).
    """
    linux = os.path.exists("/proc/self/clear_refs")
    peaks = []
    for _ in range(runs):
        gc.collect()
        if linux:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            base = _rss_kib("VmRSS") / 1024.0
        else:
            base = peak_rss_mb()
        with torch.inference_mode():
            model(batch)
        peaks.append((_rss_kib("VmHWM") / 1024.0 if linux else peak_rss_mb()) - base)
    return statistics.median(peaks)


def memory_metrics(model: nn.Module, test: Split, batch_size: int) -> dict[str, float]:
    """The model's own memory at batch `batch_size`: its tensors plus the activations of one forward.

    Not the process's peak RSS: importing torch alone is ~900 MB of that, the same for every model.
    """
    model.eval()
    weights = serialized_bytes(model) / 2**20
    return {"peak_mb": weights + activation_peak_mb(model, test.images[:batch_size])}


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory: ru_maxrss is in KiB on Linux, in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def cpu_model() -> str:
    """The CPU's marketing name, as `lscpu` shows it ("AMD EPYC", "Intel(R) Xeon(R) ...")."""
    if sys.platform == "darwin":
        res = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        return res.stdout.strip() or platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """"cpu", or "cuda (NVIDIA H100 80GB HBM3)": the GPU type, which the bytes of a CUDA run depend on."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def machine_metrics(threads: int, kernels: str, device: torch.device = CPU) -> dict[str, float | str]:
    """Where timings were taken: the same code runs 2x slower on an AVX2-only CPU than on an AVX-512 one.
    `device` is where training and accuracy ran; latency, throughput and memory are measured on the CPU
    (latency_device)."""
    return {"cpu": cpu_model(), "device": device_name(device), "latency_device": "cpu",
            # The widest SIMD path torch's own kernels use here: AVX512, AVX2, DEFAULT (or NEON etc.), as capped
            # by the kernels param.
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "kernels": kernels,
            "physical_cores": psutil.cpu_count(logical=False) or 0, "logical_cores": os.cpu_count() or 0,
            "threads": threads, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "torch": torch.__version__}


def measure(model: nn.Module, checkpoint: Path, test: Split, cfg: Any, device: torch.device = CPU,
            ) -> tuple[dict[str, float], list[int]]:
    """Every metric of one model read from `checkpoint` (its file's size among them), with evaluate's
    settings `cfg` (batch_size, latency_runs, throughput_batches), plus its predictions on the test set.

    A float model's accuracy is measured on `device`; an int8 model's on the CPU, where its kernels are. Memory
    and speed are always the CPU's (machine_metrics' latency_device)."""
    on_device = model.to(device) if any(True for _ in model.parameters()) else model
    acc, preds = accuracy_metrics(on_device, test, cfg.batch_size)
    model.to(CPU)
    metrics = {**acc, **size_metrics(model, checkpoint), **memory_metrics(model, test, cfg.batch_size),
               **speed_metrics(model, test, cfg.batch_size, cfg.latency_runs, cfg.throughput_batches)}
    return metrics, preds.tolist()


def error_rows(labels: list[int], preds: list[int]) -> list[dict[str, int]]:
    """The test images a model gets wrong, one (actual, predicted) row each, in test-set order."""
    return [{"actual": a, "predicted": p} for a, p in zip(labels, preds, strict=True) if a != p]


def frontier_rows(models: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per model (name -> its metrics) for the accuracy-per-byte and per-millisecond plots."""
    return [{"model": name, "accuracy": m["accuracy"], "checkpoint_bytes": m["checkpoint_bytes"],
             "latency_b1_ms": round(m["latency_b1_ms"], 4)} for name, m in models.items()]
