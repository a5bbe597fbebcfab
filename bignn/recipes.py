"""What each training stage computes, as functions of the params and of splits and models already loaded.

The stages load their inputs, seed the run (runtime.seeded) and call one of these; commands.seeds calls the
same ones once per seed. Nothing here reads or writes a file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bignn.channels import kept_widths, prune_channels, widths
from bignn.codebook import tune_codebooks
from bignn.compression import compress_model, decode_file
from bignn.config import CompressConfig, DistillConfig, Params, PruneConfig, TrainConfig
from bignn.data import Split
from bignn.live import EpochLogger
from bignn.model import BigCNN, build_model, count_params, model_args_from
from bignn.pruning.gradual import gradual_fit
from bignn.pruning.unstructured import prune_model
from bignn.training import CPU, FitSpec, LossFn, cached_distillation, distillation_loss, fit, prepare, score

History = list[dict[str, Any]]


def dense_fit_spec(t: TrainConfig) -> FitSpec:
    return FitSpec(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                   label_smoothing=t.label_smoothing, max_shift=t.max_shift, max_rotate=t.max_rotate,
                   max_scale=t.max_scale, schedule="onecycle")


def train_dense(params: Params, train: Split, test: Split, gen: torch.Generator,
                on_epoch: EpochLogger | None = None, device: torch.device = CPU) -> tuple[BigCNN, History]:
    """The big CNN trained from scratch (its init from torch's global RNG: seed it first), on `device`; the
    model comes back on the CPU, as from every recipe here."""
    model = build_model(**model_args_from(params.model))
    print(f"model: {count_params(model):,} parameters, {len(train)} training images", flush=True)
    return model, fit(model, train, test, dense_fit_spec(params.train), gen, desc="train", on_epoch=on_epoch,
                      device=device)


def _one_shot_row(model: nn.Module, test: Split, on_epoch: EpochLogger | None) -> History:
    """One-shot pruning logs its one score as epoch 0."""
    row = {"epoch": 0, **{f"test_{k}": v for k, v in score(model, test).items()}}
    if on_epoch is not None:
        on_epoch(row)
    return [row]


def channel_prune(model: BigCNN, params: Params, train: Split, test: Split, gen: torch.Generator,
                  on_epoch: EpochLogger | None = None, device: torch.device = CPU) -> History:
    """Remove channel.amount of every hidden layer's channels while fine-tuning (in place: the layers are rebuilt
    smaller at every step); returns the fine-tune history."""
    cfg = params.channel
    dense = widths(model)
    if cfg.finetune_epochs == 0:
        prune_channels(model, kept_widths(dense, cfg.amount))
        return _one_shot_row(model, test, on_epoch)
    return gradual_fit(model, cfg, params.train,
                       lambda target, opt: prune_channels(model, kept_widths(dense, target), opt),
                       train, test, gen, "channel fine-tune", on_epoch, device=device)


def teacher_loss(teacher: nn.Module, cfg: DistillConfig, label_smoothing: float, train: Split,
                 device: torch.device = CPU) -> LossFn:
    teacher.to(device)  # the cached targets are computed there too, once
    if cfg.soft_targets == "cached":
        return cached_distillation(teacher, train, cfg.temperature, cfg.alpha, label_smoothing)
    prepare(teacher).eval()

    def live(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # The teacher sees the student's own augmented batch: soft targets for exactly these images.
        with torch.no_grad():
            target = teacher(images)
        return distillation_loss(logits, target, labels, cfg.temperature, cfg.alpha, label_smoothing)

    return live


def train_student(params: Params, train: Split, test: Split, gen: torch.Generator, teacher: nn.Module | None,
                  on_epoch: EpochLogger | None = None, device: torch.device = CPU) -> tuple[BigCNN, History]:
    """The student from its seeded init; distilled from `teacher`, or from the labels alone with None."""
    cfg, t = params.distill, params.train
    student = build_model(**model_args_from(cfg.student))
    spec = FitSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=t.weight_decay,
                   label_smoothing=cfg.label_smoothing, max_shift=t.max_shift, max_rotate=t.max_rotate,
                   max_scale=t.max_scale, schedule="onecycle", elastic=cfg.elastic, elastic_sigma=cfg.elastic_sigma)
    loss_fn = None if teacher is None else teacher_loss(teacher, cfg, cfg.label_smoothing, train, device)
    history = fit(student, train, test, spec, gen, loss_fn=loss_fn,
                  desc="distill" if teacher is not None else "student", on_epoch=on_epoch, device=device)
    return student, history


def coded_file(compress: CompressConfig, cfg: PruneConfig, t: TrainConfig, model: nn.Module, dense_bytes: int,
               source_bytes: int, train: Split | None, gen: torch.Generator,
               device: torch.device = CPU) -> tuple[bytes, dict[str, Any]]:
    """A pruned `model` compressed as `compress` says, then, with cfg.codebook_epochs (prune's or combine's),
    the model that file decodes to with its shared values trained on `train` (bignn/codebook.py) and compressed
    again: the same positions, trained values. Returns compress_model's bytes and report."""
    data, report = compress_model(compress, model, dense_bytes, source_bytes)
    if cfg.codebook_epochs == 0:
        return data, report
    if train is None:
        raise ValueError("codebook_epochs > 0 trains the file's values: it needs the training images")
    decoded = decode_file(data)
    spec = FitSpec(epochs=cfg.codebook_epochs, batch_size=cfg.batch_size, lr=cfg.codebook_lr, weight_decay=0.0,
                   label_smoothing=cfg.label_smoothing, max_shift=cfg.augment * t.max_shift,
                   max_rotate=cfg.augment * t.max_rotate, max_scale=cfg.augment * t.max_scale, schedule="cosine")
    tune_codebooks(decoded, spec, train, gen, device)
    return compress_model(compress, decoded, dense_bytes, source_bytes)


def combined_file(params: Params, model: nn.Module, dense_bytes: int, source_bytes: int, train: Split,
                  gen: torch.Generator, device: torch.device = CPU) -> tuple[bytes, dict[str, Any]]:
    """The combine stage's file of a pruned `model`: coded_file with the combine section's codebook epochs."""
    return coded_file(params.compress, params.combine, params.train, model, dense_bytes, source_bytes, train, gen,
                      device)


__all__ = ["channel_prune", "coded_file", "combined_file", "dense_fit_spec", "prune_model", "teacher_loss",
           "train_dense", "train_student"]

