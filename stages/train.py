"""Stage 2: train the big dense CNN and save models/big_model.pth."""

from __future__ import annotations

from typing import Any

from torch import nn

from stages.common import paths
from stages.common.config import Params, load_params
from stages.common.data import load_split
from stages.common.io import save_checkpoint
from stages.common.live import EpochLogger, epoch_logger
from stages.common.model import build_model, count_params, model_args_from
from stages.common.runtime import cli, seed_everything
from stages.common.training import FitSpec, fit


def fit_spec(params: Params) -> FitSpec:
    t = params.train
    return FitSpec(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                   label_smoothing=t.label_smoothing, max_shift=t.max_shift, max_rotate=t.max_rotate,
                   max_scale=t.max_scale, schedule="onecycle")


def run(params: Params, on_epoch: EpochLogger | None = None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train from scratch; returns the model and its per-epoch history (each row also to on_epoch)."""
    gen = seed_everything(params.seed, params.threads, params.kernels)
    train = load_split(params.data.root, train=True, limit=params.data.train_limit,
                       verify=params.data.verify)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit,
                      verify=params.data.verify)
    model = build_model(**model_args_from(params.model))
    print(f"model: {count_params(model):,} parameters, {len(train)} training images", flush=True)
    history = fit(model, train, test, fit_spec(params), gen, desc="train", on_epoch=on_epoch)
    return model, history


def main() -> None:
    params = load_params()
    with epoch_logger("train") as log:
        model, _ = run(params, on_epoch=log)
    save_checkpoint(paths.DENSE_MODEL, model)


if __name__ == "__main__":
    cli(main)
