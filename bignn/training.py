"""The training loop shared by dense training and pruning's fine-tuning."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from bignn.data import Split, augment


@dataclass(frozen=True)
class FitSpec:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    max_shift: float
    max_rotate: float
    max_scale: float
    # onecycle: warm-up then anneal, for training from scratch; cosine: straight decay from lr,
    # for fine-tuning weights that are already good.
    schedule: str
    # Simard et al.'s elastic distortion on top of the affine warp (bignn.data.elastic_offsets): its strength
    # and smoothness in px; 0 leaves it out (and the random stream as it was).
    elastic: float = 0.0
    elastic_sigma: float = 4.0


# Conv layers run in channels-last (NHWC) layout: oneDNN's CPU conv kernels are NHWC, so in the default NCHW
# layout every conv reorders its input and output, forward and backward.
MEMORY_FORMAT = torch.channels_last
CPU = torch.device("cpu")


def prepare(model: nn.Module, memory_format: torch.memory_format = MEMORY_FORMAT) -> nn.Module:
    """The model's 4-D weights in memory_format (in place). Checkpoints still store contiguous tensors."""
    return model.to(memory_format=memory_format)


def as_input(x: torch.Tensor, memory_format: torch.memory_format = MEMORY_FORMAT) -> torch.Tensor:
    """The batch in MEMORY_FORMAT, with strides that say so. A 1-channel NCHW tensor already counts as
    channels-last to .contiguous(), which then keeps its NCHW strides; a conv then takes its layout from the
    weight, and a pruned layer's masked weight (orig * mask) has lost it: the whole net fell back to NCHW."""
    return torch.empty_like(x, memory_format=memory_format).copy_(x)


def _scheduler(opt: torch.optim.Optimizer, spec: FitSpec, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if spec.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=total, pct_start=0.2)
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    raise ValueError(f"unknown schedule {spec.schedule!r}; known: onecycle, cosine")


def device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are (an int8 model has no parameters: the CPU, its only home)."""
    return next(model.parameters(), torch.empty(0)).device


@torch.inference_mode()
def predict(model: nn.Module, split: Split, batch_size: int = 1000,
            memory_format: torch.memory_format = MEMORY_FORMAT) -> torch.Tensor:
    """Logits for a whole split, in eval mode, computed where the model is and returned on the CPU."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = torch.cat([model(as_input(split.images[i:i + batch_size].to(device), memory_format))
                     for i in range(0, len(split), batch_size)])
    model.train(was_training)
    return out.cpu()


def score_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    # Counted in integers: 9955 right of 10000 is 99.55, not 99.55000281 from a float32 mean.
    correct = int((logits.argmax(1) == labels).sum())
    return {"loss": F.cross_entropy(logits, labels).item(), "accuracy": 100.0 * correct / len(labels)}


def score(model: nn.Module, split: Split, batch_size: int = 1000) -> dict[str, float]:
    return score_logits(predict(model, split, batch_size), split.labels)


# (logits, augmented images, labels, the batch's indices into the training split) -> loss
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fit(model: nn.Module, train: Split, test: Split | None, spec: FitSpec, gen: torch.Generator,
        on_step: Callable[[int, int, torch.optim.Optimizer], None] | None = None, loss_fn: LossFn | None = None,
        desc: str = "train", on_epoch: Callable[[dict[str, float]], None] | None = None,
        device: torch.device = CPU) -> list[dict[str, float]]:
    """Train with AdamW; returns one row per epoch (train and test loss and accuracy, seconds).

    on_step(step, total_steps, optimizer) runs before every optimizer step (gradual pruning uses it; channel
    pruning slices the optimizer's state with the layers); on_epoch(row) after every epoch (the stages log it
    with DVCLive).
    The model and the training images move to `device` for the fit, and the model comes back to the CPU at
    the end, where every later step (masks made permanent, compression, int8, checkpoints) runs. Random draws
    (data order, augmentation) come from `gen` on the CPU whatever the device, so a GPU run sees the same
    batches.
    loss_fn(logits, images, labels, idx) replaces the label-smoothed cross-entropy (distillation uses it: a
    teacher either sees the student's augmented images or looks up its targets for those training indices).
    """
    prepare(model.to(device))
    train = Split(train.images.to(device), train.labels.to(device))
    n_batches = -(-len(train) // spec.batch_size)
    total = spec.epochs * n_batches
    # fused: one kernel for the whole update; on 2 cores the default per-tensor loop took 12-20 ms a step.
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    sched = _scheduler(opt, spec, total)
    history = []
    step = 0
    for epoch in range(1, spec.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(train), generator=gen)
        loss_sum, correct = 0.0, 0
        for b in tqdm(range(n_batches), desc=f"{desc} epoch {epoch}/{spec.epochs}", leave=False,
                      mininterval=2.0):
            if on_step is not None:
                on_step(step, total, opt)
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            x = as_input(augment(train.images[idx], spec.max_shift, spec.max_rotate, gen, spec.max_scale,
                                 spec.elastic, spec.elastic_sigma))
            y = train.labels[idx]
            logits = model(x)
            if loss_fn is None:
                loss = F.cross_entropy(logits, y, label_smoothing=spec.label_smoothing)
            else:
                loss = loss_fn(logits, x, y, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        row = {"epoch": epoch, "train_loss": loss_sum / len(train), "train_accuracy": 100.0 * correct / len(train),
               "seconds": time.perf_counter() - t0}
        if test is not None:
            row.update({f"test_{k}": v for k, v in score(model, test).items()})
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    model.to(CPU)
    return history


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels).

    T^2 keeps the soft term's gradients the same size whatever the temperature, so alpha means the same
    mix at any T. alpha = 0 is exactly the plain (label-smoothed) cross-entropy.
    """
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    return alpha * soft + (1 - alpha) * hard


def cached_distillation(teacher: nn.Module, train: Split, temperature: float, alpha: float,
                        label_smoothing: float) -> LossFn:
    """distillation_loss against the teacher's logits for the plain (un-augmented) training images.

    One teacher pass over the split before training instead of one forward per step (the teacher's forward
    costs about as much as a small student's whole step); each augmented image gets its original's soft
    targets, which a +-2 px, +-10 degree warp barely moves. clone(): a plain tensor, not an inference one.
    """
    cached = predict(prepare(teacher), train).clone()

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return distillation_loss(logits, cached[idx].to(logits.device), labels, temperature, alpha, label_smoothing)

    return loss
