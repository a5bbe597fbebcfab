"""The distillation loss and the distill stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bignn import paths, recipes
from bignn.config import Params, replace
from bignn.data import load_split
from bignn.io import save_checkpoint
from bignn.model import build_model, count_params
from bignn.pruning import unstructured
from bignn.training import CPU, as_input, distillation_loss
from stages import distill, train


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_hard_labels_only_is_exactly_cross_entropy(smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(32, 10, generator=gen), torch.randn(32, 10, generator=gen)
    labels = torch.randint(0, 10, (32,), generator=gen)
    loss = distillation_loss(student, teacher, labels, temperature=4.0, alpha=0.0, label_smoothing=smoothing)
    assert torch.equal(loss, F.cross_entropy(student, labels, label_smoothing=smoothing))


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_soft_loss_is_smallest_when_student_matches_teacher(temperature: float) -> None:
    gen = torch.Generator().manual_seed(1)
    teacher = 3 * torch.randn(16, 10, generator=gen)
    labels = torch.randint(0, 10, (16,), generator=gen)
    match = teacher.clone().requires_grad_(True)
    at_match = distillation_loss(match, teacher, labels, temperature, alpha=1.0)
    at_match.backward()
    assert at_match.item() == pytest.approx(0.0, abs=1e-5)
    assert float(match.grad.abs().max()) < 1e-6  # a minimum: no direction to improve
    for _ in range(5):
        other = teacher + torch.randn(16, 10, generator=gen)
        assert distillation_loss(other, teacher, labels, temperature, alpha=1.0).item() > at_match.item()
    # Adding a constant to every logit leaves the softmax, and so the loss, unchanged.
    shifted = distillation_loss(teacher + 5.0, teacher, labels, temperature, alpha=1.0)
    assert float(shifted) == pytest.approx(0.0, abs=1e-5)


def test_distilling_stage_trains_the_control_from_the_same_start(tiny_params: Params, in_tmp: Path) -> None:
    teacher, _ = train.run(tiny_params)
    save_checkpoint(paths.DENSE_MODEL, teacher)
    params = replace(tiny_params, distill=replace(tiny_params.distill, epochs=1))
    student, report = distill.run(params)
    assert params.distill.alpha > 0 and report["distilled"]
    assert student.model_args["conv_channels"] == list(params.distill.student.conv_channels)
    assert count_params(student) < count_params(teacher)
    assert report["test_accuracy"] > 50.0 and report["alone_test_accuracy"] > 50.0
    assert report["gain"] == pytest.approx(report["test_accuracy"] - report["alone_test_accuracy"])
    alone, hist = distill.train_student(params, None)
    assert hist[-1]["test_accuracy"] == report["alone_test_accuracy"]
    # Same seed and data order: the only difference is the teacher, so the weights differ.
    assert not torch.equal(student.classifier[-1].weight, alone.classifier[-1].weight)
    # distill.seed alone (the global seed, which retrains the teacher, unchanged) gives another student.
    other, _ = distill.train_student(replace(params, distill=replace(params.distill, seed=1)), None)
    assert not torch.equal(other.classifier[-1].weight, alone.classifier[-1].weight)


def test_without_distillation_the_student_is_trained_once(tiny_params: Params, in_tmp: Path) -> None:
    params = replace(tiny_params, distill=replace(tiny_params.distill, epochs=1, alpha=0.0))
    rows: list[dict[str, float]] = []
    # No teacher is read: models/dense.pth does not exist here.
    student, report = distill.run(params, on_epoch=rows.append)
    assert report == {"test_accuracy": rows[-1]["test_accuracy"], "distilled": False} and len(rows) == 1
    alone, _ = distill.train_student(params, None)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), student.state_dict().values(),
                                                  strict=True))


def test_cached_soft_targets_are_the_teachers_outputs_on_the_plain_images(tiny_params: Params) -> None:
    """On un-augmented images the cached and the live teacher give the same loss; cached ignores the images."""
    torch.manual_seed(0)
    teacher = build_model([4, 8], [32])
    train_split = load_split(tiny_params.data.root, train=True, limit=300, verify=False)
    losses = {mode: recipes.teacher_loss(teacher, replace(tiny_params.distill, soft_targets=mode, alpha=1.0),
                                         tiny_params.train.label_smoothing, train_split) for mode in ("cached", "live")}
    idx = torch.arange(100, 164)
    plain, labels = as_input(train_split.images[idx]), train_split.labels[idx]
    logits = torch.randn(64, 10)
    cached, live = (losses[m](logits, plain, labels, idx) for m in ("cached", "live"))
    assert cached.item() == pytest.approx(live.item(), rel=1e-4) and cached.item() > 0
    warped = plain.flip(-1)
    assert torch.equal(losses["cached"](logits, warped, labels, idx), cached)
    assert losses["live"](logits, warped, labels, idx).item() != pytest.approx(live.item(), rel=1e-4)


def test_prune_self_distillation_targets_the_unpruned_models_own_logits(tiny_params: Params,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """prune.distill_alpha: the fine-tune's loss pulls toward the model's logits from before the first prune step
    (zero for the unpruned model itself at alpha 1, above zero once weights go); at 0 training's loss stays."""
    torch.manual_seed(0)
    model = build_model([4, 8], [32])
    with torch.no_grad():
        model.classifier[-1].weight.mul_(50)  # untrained logits are nearly uniform: make its targets peaked
    split = load_split(tiny_params.data.root, train=True, limit=300, verify=False)
    cfg = replace(tiny_params.prune, distill_alpha=1.0, distill_temperature=2.0, finetune_epochs=1)
    loss = unstructured._self_distillation(model, cfg, split, CPU)
    idx = torch.arange(40, 104)
    plain = as_input(split.images[idx])
    with torch.no_grad():
        model.eval()
        assert loss(model(plain), plain, split.labels[idx], idx).item() == pytest.approx(0.0, abs=1e-5)
        unstructured.global_l1(model.to(memory_format=torch.contiguous_format), 0.8)
        assert loss(model(plain), plain, split.labels[idx], idx).item() > 0.01
    assert unstructured._self_distillation(model, replace(cfg, distill_alpha=0.0), split, CPU) is None
    passed: list[object] = []
    monkeypatch.setattr(unstructured, "gradual_fit", lambda *a: passed.append(a[-1]) or [])
    for alpha in (0.5, 0.0):
        unstructured.prune_model(build_model([4, 8], [32]), replace(cfg, distill_alpha=alpha), tiny_params.train,
                                 split, split, torch.Generator().manual_seed(0))
    assert callable(passed[0]) and passed[1] is None
