"""The profile command: ops land in the right part of the step, and an epoch's parts add up."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import prune

from bignn import training
from bignn.config import Params
from bignn.data import load_split
from bignn.model import build_model, model_args_from
from commands import profile


@pytest.mark.parametrize(("op", "group"), [
    ("aten::mm", "linear"), ("aten::addmm", "linear"), ("mkldnn::_linear_pointwise", "linear"),
    ("aten::convolution_backward", "conv"),
    ("aten::mkldnn_convolution", "conv"), ("aten::threshold_backward", "relu"), ("aten::clamp_min_", "relu"),
    ("aten::native_batch_norm_backward", "batch norm"), ("aten::_fused_adamw_", "optimizer"),
    ("aten::grid_sampler_2d", "augmentation"), ("aten::fill_", "memory fill and copies"),
    ("aten::bernoulli_", "dropout"), ("aten::max_pool2d_with_indices", "max pool"),
    ("## Call CompiledFxGraph fjel7fm6p6g443xcwjsovikyxgfv ##", "compiled (Inductor's fused kernels)"),
    ("aten::some_new_op", "other (elementwise, indexing, Python)"),
])
def test_ops_are_grouped_by_part_of_the_step(op: str, group: str) -> None:
    assert profile._group(op) == group


def test_profile_scales_parts_to_an_epoch(tiny_params: Params) -> None:
    train = load_split(tiny_params.data.root, train=True, limit=640, verify=False)
    test = load_split(tiny_params.data.root, train=False, limit=100, verify=False)
    student = build_model(**model_args_from(tiny_params.distill.student))
    teacher = build_model(**model_args_from(tiny_params.model))
    parts = profile.profile_training(student, train, test, tiny_params, 64, steps=4, teacher=teacher)
    assert parts["conv"] > 0 and parts["optimizer"] > 0 and parts["teacher forward (distilled student only)"] > 0
    wall = parts["= training step, wall (under the profiler)"]
    profiled = sum(v for k, v in parts.items() if not k.startswith(("=", "teacher", "test")))
    assert 0 < profiled <= wall * 1.5  # self times of the ops account for (most of) the wall time, not more


def test_compiled_trains_through_torch_compile_and_eager_does_not(tiny_params: Params,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """--compile hands the model to torch.compile (stood in for here: Inductor's C++ build takes ~20 s on 2 cores,
    and the serving test compiles once already) and trains through what it returns; without it, nothing is."""
    calls, used = [], []

    def fake_compile(model: torch.nn.Module, **kwargs: object) -> object:
        calls.append(kwargs)

        def compiled(x: torch.Tensor) -> torch.Tensor:
            used.append(len(x))
            return model(x)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    train = load_split(tiny_params.data.root, train=True, limit=256, verify=False)
    test = load_split(tiny_params.data.root, train=False, limit=100, verify=False)
    model = build_model(**model_args_from(tiny_params.model))
    profile.profile_training(model, train, test, tiny_params, 64, steps=2)
    assert calls == []
    parts = profile.profile_training(model, train, test, tiny_params, 64, steps=2, compiled=True)
    assert calls == [{"dynamic": False}]
    assert used == [64] * 5  # every step (3 warm-up, 2 profiled) went through what torch.compile returned
    assert parts["conv"] > 0 and parts["optimizer"] > 0


def test_sparse_linear_timings_cover_every_density() -> None:
    rows = profile.sparse_linear_timings(64, 16, 8, densities=(0.05, 0.5), reps=2)
    assert [r["density"] for r in rows] == [0.05, 0.5]
    assert all(r["dense_ms"] > 0 and r["sparse_ms"] > 0 and r["gather_ms"] > 0 for r in rows)


def test_gather_linear_is_the_masked_layer_on_its_kept_weights() -> None:
    """The same outputs, the same gradient for the input, and for each kept weight the masked layer's gradient."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(40, 12)
    prune.l1_unstructured(layer, "weight", amount=0.9)
    gather = profile.GatherLinear(layer)
    assert len(gather.values) == int(layer.weight_mask.sum()) == 48
    x = torch.randn(6, 40, requires_grad=True)
    y = layer(x)
    (y * torch.arange(12.0)).sum().backward()
    dense_dx, x.grad = x.grad, None
    y_gather = gather(x)
    (y_gather * torch.arange(12.0)).sum().backward()
    torch.testing.assert_close(y_gather, y)
    torch.testing.assert_close(x.grad, dense_dx)
    torch.testing.assert_close(gather.values.grad, layer.weight_orig.grad[gather.rows, gather.cols])
    torch.testing.assert_close(gather.bias.grad, layer.bias.grad)


def test_latency_floor_narrows_every_hidden_layer(tiny_params: Params) -> None:
    rows = profile.latency_by_width(tiny_params, keep=(1.0, 0.5, 0.01), runs=3)
    assert [r["conv_channels"] for r in rows] == [[4, 8], [2, 4], [1, 1]]
    assert [r["hidden"] for r in rows] == [[64, 32], [32, 16], [1, 1]]
    assert all(r["latency_b1_ms"] > 0 for r in rows)


def test_serving_forms_give_the_eager_outputs_and_a_timing_per_round(tiny_params: Params) -> None:
    torch.manual_seed(0)
    models = {"dense": build_model(**model_args_from(tiny_params.model)), "narrow": build_model([2, 4], [8, 4])}
    # torch.compile on one model only: Inductor compiles C++ per model (~20 s on 2 cores), and a second model of
    # the same layers takes no other path.
    eager_forms = [f for f in profile.SERVING_FORMS if f != "compiled"]
    rows = profile.serving_latency(models, forms=eager_forms, runs=3, rounds=2)
    assert [(r["model"], r["form"]) for r in rows] == [(m, f) for m in models for f in eager_forms]
    rows += profile.serving_latency({"narrow": models["narrow"]}, forms=["compiled"], runs=3, rounds=2)
    assert rows[-1]["form"] == "compiled"
    assert all(r["max_abs_diff"] <= 1e-4 and len(r["rounds_ms"]) == 2 and r["latency_b1_ms"] > 0 for r in rows)
    with pytest.raises(ValueError, match="serving form 'onnx'"):
        profile.serving_form(models["dense"], "onnx", torch.rand(1, 1, 28, 28))


def test_memory_format_is_an_argument_not_a_global(tiny_params: Params) -> None:
    """Profiling the contiguous layout leaves the layout the stages train in alone."""
    train = load_split(tiny_params.data.root, train=True, limit=256, verify=False)
    test = load_split(tiny_params.data.root, train=False, limit=100, verify=False)
    model = build_model(**model_args_from(tiny_params.model))
    profile.profile_training(model, train, test, tiny_params, 64, steps=2, memory_format=torch.contiguous_format)
    assert training.MEMORY_FORMAT == torch.channels_last
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # 1 input channel fits both layouts
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_each_measurement_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        profile.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("epoch", "sparse-linear", "latency-floor", "serving"))
    with pytest.raises(SystemExit) as done:
        profile.main(["--serving"])  # the old flag form is refused, not run
    assert done.value.code == 2
