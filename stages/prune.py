"""Stage 3: prune the dense model, fine-tune with the masks held, save models/big_model_pruned.pth.

"What to remove" lives in PRUNERS (one function per method); the stage applies it, gradually or at once,
then makes the masks permanent with torch.nn.utils.prune.remove so the saved weights hold real zeros.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from stages.common import paths
from stages.common.config import Params, load_params
from stages.common.data import load_split
from stages.common.io import load_checkpoint, save_checkpoint, write_csv, write_json
from stages.common.model import prunable
from stages.common.runtime import cli, seed_everything
from stages.common.training import FitSpec, fit, score


def _targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for _, m in prunable(model)]


def _pruned_count(model: nn.Module) -> int:
    """Weights already masked out (a layer that has no mask yet has none)."""
    return sum(int((m.weight_mask == 0).sum()) for m, _ in _targets(model) if hasattr(m, "weight_mask"))


def global_l1(model: nn.Module, n_zero: int) -> None:
    """Mask the n_zero smallest-magnitude conv and linear weights, ranked across all layers at once."""
    # global_unstructured ranks only the still-unmasked weights, so ask for the difference.
    prune.global_unstructured(_targets(model), pruning_method=prune.L1Unstructured,
                              amount=n_zero - _pruned_count(model))


PRUNERS: dict[str, Callable[[nn.Module, int], None]] = {"global_l1": global_l1}


def make_permanent(model: nn.Module) -> None:
    for m, name in _targets(model):
        if prune.is_pruned(m):
            prune.remove(m, name)


def cubic_schedule(amount: float, steps: int) -> list[float]:
    """Sparsity after each of `steps` prune steps: fast at first, slow near the target (Zhu & Gupta 2017)."""
    return [amount * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


def layer_sparsity(model: nn.Module) -> list[dict[str, Any]]:
    rows = []
    for name, m in prunable(model):
        w = m.weight.detach()
        nz = int(torch.count_nonzero(w))
        rows.append({"layer": name, "params": w.numel(), "nonzero": nz, "sparsity": 1 - nz / w.numel()})
    return rows


def global_sparsity(model: nn.Module) -> float:
    rows = layer_sparsity(model)
    return 1 - sum(r["nonzero"] for r in rows) / sum(r["params"] for r in rows)


def run(params: Params, dense_path: Path = paths.DENSE_MODEL) -> tuple[nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """Prune to params.prune.amount; returns the pruned model, its sparsity report and fine-tune history."""
    cfg = params.prune
    gen = seed_everything(params.seed, params.threads)
    model, _ = load_checkpoint(dense_path)
    total = sum(m.weight.numel() for m, _ in _targets(model))
    pruner = PRUNERS[cfg.method]
    test = load_split(params.data.root, train=False, limit=params.data.test_limit,
                      verify=params.data.verify)
    if cfg.finetune_epochs == 0:
        pruner(model, round(cfg.amount * total))
        history = [{"epoch": 0, **{f"test_{k}": v for k, v in score(model, test).items()}}]
    else:
        schedule = cubic_schedule(cfg.amount, cfg.steps)

        def on_step(step: int, total_steps: int) -> None:
            # Prune steps are spread evenly over the first `ramp` of fine-tuning; the rest recovers.
            ramp_steps = max(1, int(cfg.ramp * total_steps))
            for k, target in enumerate(schedule):
                if step == k * ramp_steps // len(schedule):
                    pruner(model, round(target * total))

        t = params.train
        spec = FitSpec(epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       weight_decay=t.weight_decay, label_smoothing=t.label_smoothing,
                       max_shift=t.max_shift, max_rotate=t.max_rotate, schedule="cosine")
        train = load_split(params.data.root, train=True, limit=params.data.train_limit,
                           verify=params.data.verify)
        history = fit(model, train, test, spec, gen, on_step=on_step, desc="fine-tune")
    make_permanent(model)
    report = {"global_sparsity": global_sparsity(model), "layers": layer_sparsity(model)}
    return model, report, history


def main() -> None:
    params = load_params()
    t0 = time.perf_counter()
    model, report, history = run(params)
    seconds = time.perf_counter() - t0
    print(f"global sparsity {report['global_sparsity']:.4f}")
    for row in report["layers"]:
        print(f"  {row['layer']:<14} {row['nonzero']:>9,} / {row['params']:>9,} nonzero  "
              f"sparsity {row['sparsity']:.4f}")
    save_checkpoint(paths.PRUNED_MODEL, model)
    write_csv(paths.LAYER_SPARSITY, report["layers"])
    write_json(paths.PRUNE_METRICS, {"global_sparsity": report["global_sparsity"], "seconds": seconds})
    write_csv(paths.FINETUNE_LOG, [{"stage": "finetune", **row} for row in history])


if __name__ == "__main__":
    cli(main)
