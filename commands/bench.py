"""One benchmark, in one process: every form of the model side by side, with ratios to dense (`make bench`).

    python -m commands bench     # needs `dvc repro` first; prints a table, writes metrics/bench.json

Models: dense; unstructured-pruned with dense kernels; the same with CSR sparse kernels for the linear layers;
the compressed artifact (rebuilt to dense kernels: it is about bytes on disk); the channel stage's structured
model, its int8 form and the combine stage's file (channel + unstructured + compressed); int8 (torch.ao,
x86/fbgemm) of dense and pruned. Timings are interleaved round-robin over
`bench.repeats` rounds and the median is kept, so slow drift on a shared machine hits every model alike.

Also: training images/s of this pipeline's in-memory loop vs a plain torchvision MNIST + DataLoader loop for
the same model, and the achieved GFLOP/s against a large matrix multiply measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import Split, load_split
from bignn.forms import load_model, with_csr_linears
from bignn.io import write_json
from bignn.metrics import activation_peak_mb, machine_metrics, median_seconds, serialized_bytes
from bignn.model import BigCNN, build_model, model_args_from
from bignn.quantize import quantize_int8
from bignn.runtime import cli, seeded, setup
from bignn.training import FitSpec, fit, score

BENCH_JSON = paths.BENCH_JSON


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    return 1000.0 * median_seconds(fn, runs)


def build_models(params: Params) -> dict[str, tuple[nn.Module, int]]:
    """{name: (model in eval mode, bytes on disk)}."""
    calib = load_split(params.data.root, train=True, limit=params.bench.calibration_images,
                       verify=params.data.verify).images
    dense, pruned = load_model(paths.DENSE_MODEL), load_model(paths.PRUNED_MODEL)
    models: dict[str, tuple[nn.Module, int]] = {
        "dense": (dense, paths.DENSE_MODEL.stat().st_size),
        "pruned": (pruned, paths.PRUNED_MODEL.stat().st_size),
    }
    csr = with_csr_linears(pruned)
    models["pruned_csr"] = (csr, serialized_bytes(csr))
    models["compressed"] = (load_model(paths.COMPRESSED_MODEL), paths.COMPRESSED_MODEL.stat().st_size)
    for name, path in (("channel", paths.CHANNEL_MODEL), ("channel_int8", paths.CHANNEL_INT8_MODEL),
                       ("combined", paths.COMBINED_MODEL)):
        models[name] = (load_model(path), path.stat().st_size)
    for name in ("dense", "pruned"):  # the pipeline writes only the channel model's int8 form
        q = quantize_int8(models[name][0], calib)
        models[f"{name}_int8"] = (q, serialized_bytes(q))
    for model, _ in models.values():
        model.eval()
    return models


@torch.inference_mode()
def measure_models(params: Params, models: dict[str, tuple[nn.Module, int]], test: Split) -> dict[str, dict]:
    cfg = params.bench
    one, batch = test.images[:1], test.images[:cfg.batch_size]
    rows: dict[str, dict[str, Any]] = {}
    for name, (model, disk) in models.items():
        rows[name] = {"accuracy": score(model, test, cfg.batch_size)["accuracy"], "checkpoint_bytes": disk,
                      "weights_mb": serialized_bytes(model) / 2**20,
                      "activation_peak_mb": activation_peak_mb(model, batch)}
        for _ in range(3):  # warm-up: first calls allocate and pick kernels
            model(one)
            model(batch)
    latency: dict[str, list[float]] = {name: [] for name in models}
    per_batch: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(cfg.repeats):
        for name, (model, _) in models.items():
            latency[name].append(_median_ms(lambda m=model: m(one), cfg.latency_runs))
            per_batch[name].append(_median_ms(lambda m=model: m(batch), cfg.throughput_batches))
    for name, row in rows.items():
        row["latency_b1_ms"] = statistics.median(latency[name])
        row["throughput_ips"] = 1000.0 * len(batch) / statistics.median(per_batch[name])
        row["peak_mb"] = row["weights_mb"] + row["activation_peak_mb"]
    base = rows["dense"]
    for row in rows.values():
        row["speedup_b1"] = base["latency_b1_ms"] / row["latency_b1_ms"]
        row["throughput_ratio"] = row["throughput_ips"] / base["throughput_ips"]
        row["times_smaller_on_disk"] = base["checkpoint_bytes"] / row["checkpoint_bytes"]
        row["accuracy_delta"] = row["accuracy"] - base["accuracy"]
    return rows


def forward_flops(model: BigCNN) -> int:
    """Multiply-adds x 2 of one image's forward pass through the conv and linear layers."""
    flops, side = 0, 28
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            flops += 2 * layer.in_channels * layer.out_channels * 9 * side * side
        elif isinstance(layer, nn.MaxPool2d):
            side //= 2
    return flops + sum(2 * m.in_features * m.out_features for m in model.classifier if isinstance(m, nn.Linear))


def gemm_peak_gflops(n: int = 2048, runs: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / (_median_ms(lambda: a @ b, runs) / 1000.0) / 1e9


def _train_steps(model: nn.Module, batches: Callable[[], Any]) -> float:
    """Images per second of forward + backward + AdamW over the batches (one warm-up step excluded)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    n, t0 = 0, 0.0
    for i, (x, y) in enumerate(batches()):
        if i == 1:
            n, t0 = 0, time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - t0)


def measure_input_pipeline(params: Params) -> dict[str, float]:
    """The same model and training step fed two ways: in-memory tensors + batch warp, or a DataLoader."""
    # Imported here: torchvision costs 1.7 s of CPU to import, and only this comparison uses it (the table,
    # the tests and the param check import this module too).
    from torchvision import transforms
    from torchvision.datasets import MNIST

    cfg, t = params.bench, params.train
    setup(params.threads, params.kernels)
    gen = seeded(params.seed)
    train = load_split(params.data.root, train=True, limit=cfg.pipeline_images, verify=params.data.verify)
    model = build_model(**model_args_from(params.model))
    # The input pipeline is what is compared: no weight decay or label smoothing, as the DataLoader run has none.
    # Two epochs, the second timed: the first pays oneDNN's kernel set-up for each shape, as the DataLoader run's
    # untimed first step does.
    spec = FitSpec(epochs=2, batch_size=t.batch_size, lr=t.lr, weight_decay=0.0, label_smoothing=0.0,
                   max_shift=t.max_shift, max_rotate=t.max_rotate, max_scale=t.max_scale, schedule="onecycle")
    history = fit(model, train, None, spec, gen, desc="bench: this trainer")
    ours = len(train) / history[-1]["seconds"]
    zoom = (1 - t.max_scale, 1 + t.max_scale) if t.max_scale > 0 else None
    aug = transforms.Compose([transforms.RandomAffine(t.max_rotate, translate=(t.max_shift / 28, t.max_shift / 28),
                                                      scale=zoom), transforms.ToTensor()])
    ds = Subset(MNIST(params.data.root, train=True, transform=aug), range(cfg.pipeline_images))
    loader = DataLoader(ds, batch_size=t.batch_size, shuffle=True, num_workers=0)
    torchvision_ips = _train_steps(build_model(**model_args_from(params.model)).train(), lambda: iter(loader))
    forward = forward_flops(model)
    train_gflops = ours * 3 * forward / 1e9  # backward costs about twice the forward
    peak = gemm_peak_gflops()
    return {"this_trainer_ips": ours, "torchvision_dataloader_ips": torchvision_ips,
            "trainer_speedup": ours / torchvision_ips, "train_gflops": train_gflops,
            "gemm_peak_gflops": peak, "train_fraction_of_peak": train_gflops / peak,
            "forward_mflops_per_image": forward / 1e6}


COLUMNS = [("accuracy", "acc %", "{:.2f}"), ("latency_b1_ms", "b1 ms", "{:.3f}"), ("speedup_b1", "x", "{:.2f}"),
           ("throughput_ips", "img/s b256", "{:,.0f}"), ("throughput_ratio", "x", "{:.2f}"),
           ("peak_mb", "peak MB", "{:.1f}"), ("checkpoint_bytes", "bytes", "{:,}"),
           ("times_smaller_on_disk", "x smaller", "{:.1f}")]


FORMS = ("dense", "pruned", "pruned_csr", "compressed", "channel", "combined", "dense_int8", "pruned_int8",
         "channel_int8")


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown, one row per model form in FORMS order (metrics/bench.json stores them sorted by name)."""
    lines = ["| model | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name in FORMS:
        row = rows[name]
        lines.append(f"| {name} | " + " | ".join(f.format(row[k]) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def run(params: Params) -> dict[str, Any]:
    setup(params.threads, params.kernels)
    seeded(params.seed)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    models = build_models(params)
    rows = measure_models(params, models, test)
    return {"models": rows, "input_pipeline": measure_input_pipeline(params), "threads": params.threads,
            "machine": machine_metrics(params.threads, params.kernels),
            "dense_inference_gflops": rows["dense"]["throughput_ips"] * forward_flops(models["dense"][0]) / 1e9}


def main() -> None:
    params = load_params()
    result = run(params)
    write_json(BENCH_JSON, result)
    print(table(result["models"]))
    print(" ".join(f"{k}={v:.4g}" for k, v in result["input_pipeline"].items()))
    print(f"dense inference at batch {params.bench.batch_size}: {result['dense_inference_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    cli(main)
