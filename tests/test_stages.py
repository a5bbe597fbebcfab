"""train -> prune -> evaluate on a tiny synthetic split."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from bignn import paths, recipes, training
from bignn.channels import kept_widths, l1_keep, prune_channels, widths
from bignn.channels import layers as channel_layers
from bignn.config import ConfigError, Params, params_from_dict, replace
from bignn.data import augment, elastic_offsets, load_split
from bignn.forms import load_model
from bignn.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from bignn.live import epoch_logger
from bignn.metrics import error_rows
from bignn.model import build_model, count_params
from bignn.pruning import gradual, sparse, unstructured
from bignn.quantize import int8_bytes
from bignn.runtime import seeded, setup
from bignn.training import FitSpec, fit, score
from stages import channel, combine, distill, evaluate, prune, train
from tests.tiny import tiny_dict


@pytest.fixture
def trained(pruned_params: Params) -> Path:
    """models/dense.pth: train.run(tiny_params)'s model, trained once per worker (conftest's pruned_params puts
    it in this test's folder)."""
    return paths.DENSE_MODEL


def test_train_learns_and_logs_each_epoch(tiny_params: Params) -> None:
    params = replace(tiny_params, train=replace(tiny_params.train, epochs=2))
    model, history = train.run(params)
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["test_accuracy"] > 80.0  # chance is 10%
    assert set(history[0]) >= {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}


def test_training_twice_gives_byte_identical_checkpoints(tiny_params: Params, tmp_path: Path) -> None:
    for name in ("a.pth", "b.pth"):
        model, _ = train.run(tiny_params)
        save_checkpoint(tmp_path / name, model)
    assert (tmp_path / "a.pth").read_bytes() == (tmp_path / "b.pth").read_bytes()


@pytest.mark.parametrize("method", ["global_l1", "layer_l1", "erk_l1", "random"])
@pytest.mark.parametrize("amount", [0.0, 0.5, 0.93])
def test_one_shot_prune_hits_the_requested_sparsity(tiny_params: Params, trained: Path, amount: float,
                                                    method: str) -> None:
    params = replace(tiny_params, prune=replace(tiny_params.prune, amount=amount, finetune_epochs=0, method=method))
    model, report, _ = prune.run(params, trained)
    total = sum(r["params"] for r in report["layers"])
    zeros = sum(r["params"] - r["nonzero"] for r in report["layers"])
    assert abs(zeros - amount * total) <= len(report["layers"])  # within a weight (a layer, for the per-layer ones)
    if method == "layer_l1":
        assert all(abs(r["sparsity"] - amount) <= 1 / r["params"] for r in report["layers"])
    assert not any(torch.nn.utils.prune.is_pruned(m) for m in model.modules()), "masks must be made permanent"
    assert model.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_baselines_choose_other_weights_than_global_magnitude(tiny_params: Params, trained: Path) -> None:
    """random keeps some small weights that global_l1 drops; global_l1 leaves the small first conv denser
    than layer_l1, which cuts every layer alike."""
    masks = {}
    for method in ("global_l1", "layer_l1", "random"):
        params = replace(tiny_params, prune=replace(tiny_params.prune, amount=0.8, finetune_epochs=0, method=method))
        model, report, _ = prune.run(params, trained)
        masks[method] = {r["layer"]: r["sparsity"] for r in report["layers"]}
        masks[method]["w"] = model.classifier[1].weight != 0
    assert not torch.equal(masks["random"]["w"], masks["global_l1"]["w"])
    assert masks["global_l1"]["features.0"] < masks["layer_l1"]["features.0"]


def test_prune_dropout_false_fine_tunes_without_dropout(tiny_params: Params, trained: Path) -> None:
    def pruned(dropout: bool) -> torch.nn.Module:
        cfg = replace(tiny_params.prune, amount=0.9, finetune_epochs=1, dropout=dropout)
        return prune.run(replace(tiny_params, prune=cfg), trained)[0]

    on, off = pruned(True), pruned(False)
    assert [m.p for m in on.modules() if isinstance(m, torch.nn.Dropout)] == [0.1, 0.1]
    assert [m.p for m in off.modules() if isinstance(m, torch.nn.Dropout)] == [0.0, 0.0]
    assert not torch.equal(on.classifier[-1].weight, off.classifier[-1].weight)  # it changed the fine-tune
    assert off.model_args["dropout"] == 0.1  # the saved architecture is the dense model's


@pytest.fixture
def augment_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, ...]]:
    """The (max_shift, max_rotate, max_scale) of every augmentation call from here on (and its elastic, where a
    call bends the digits: only the student's may)."""
    seen: list[tuple[float, ...]] = []
    real = training.augment

    def spy(x: torch.Tensor, max_shift: float, max_rotate: float, gen: torch.Generator,
            max_scale: float = 0.0, elastic: float = 0.0, elastic_sigma: float = 4.0) -> torch.Tensor:
        seen.append((max_shift, max_rotate, max_scale, *([elastic] if elastic else [])))
        return real(x, max_shift, max_rotate, gen, max_scale, elastic, elastic_sigma)

    monkeypatch.setattr(training, "augment", spy)
    return seen


def test_prune_augment_scales_trainings_augmentation(tiny_params: Params, trained: Path,
                                                    augment_calls: list[tuple[float, ...]]) -> None:
    seen = augment_calls
    weights = {}
    zoomed = replace(tiny_params, train=replace(tiny_params.train, max_scale=0.1))  # all three parts scale
    for scale in (1.0, 0.5, 0.0):
        seen.clear()
        cfg = replace(zoomed.prune, amount=0.9, finetune_epochs=1, augment=scale)
        weights[scale] = prune.run(replace(zoomed, prune=cfg), trained)[0].classifier[-1].weight
        t = zoomed.train
        assert set(seen) == {(scale * t.max_shift, scale * t.max_rotate, scale * t.max_scale)}
    assert not torch.equal(weights[1.0], weights[0.5])  # it changed the fine-tune
    assert not torch.equal(weights[0.5], weights[0.0])


def test_channel_dropout_and_augment_reach_its_fine_tune(tiny_params: Params, trained: Path,
                                                        augment_calls: list[tuple[float, ...]]) -> None:
    seen = augment_calls
    models = {}
    for dropout, scale in ((True, 1.0), (False, 1.0), (False, 0.5)):
        seen.clear()
        cfg = replace(tiny_params.channel, dropout=dropout, augment=scale)
        models[dropout, scale] = channel.run(replace(tiny_params, channel=cfg), trained)[0]
        t = tiny_params.train
        assert set(seen) == {(scale * t.max_shift, scale * t.max_rotate, scale * t.max_scale)}
    assert [m.p for m in models[False, 1.0].modules() if isinstance(m, torch.nn.Dropout)] == [0.0, 0.0]
    assert models[False, 1.0].model_args["dropout"] == 0.1  # the saved architecture keeps its dropout
    last = {k: m.classifier[-1].weight for k, m in models.items()}
    assert not torch.equal(last[True, 1.0], last[False, 1.0]) and not torch.equal(last[False, 1.0], last[False, 0.5])


@pytest.fixture
def smoothing_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The label_smoothing of every training loss computed (score()'s plain loss passes none)."""
    seen: list[float] = []
    real = torch.nn.functional.cross_entropy

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        if "label_smoothing" in kwargs:
            seen.append(kwargs["label_smoothing"])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    return seen


def test_each_stage_trains_with_its_own_label_smoothing(tiny_params: Params, trained: Path,
                                                       smoothing_calls: list[float]) -> None:
    p = replace(tiny_params, train=replace(tiny_params.train, label_smoothing=0.3))  # the dense model's only
    p = replace(p, prune=replace(p.prune, amount=0.5, finetune_epochs=1, label_smoothing=0.05),
                channel=replace(p.channel, finetune_epochs=1, label_smoothing=0.15),
                distill=replace(p.distill, epochs=1, label_smoothing=0.2),
                combine=replace(p.combine, finetune_epochs=1, codebook_epochs=1, label_smoothing=0.25),
                compress=replace(p.compress, quantizer="kmeans", coder="range"))
    runs = {0.05: lambda: prune.run(p, trained), 0.15: lambda: channel.run(p, trained),
            0.2: lambda: distill.run(p, trained), 0.25: lambda: combine.run(p, trained, trained)}
    for smoothing, run in runs.items():
        smoothing_calls.clear()
        run()
        assert set(smoothing_calls) == {smoothing}


def test_erk_shares_follow_the_layer_shapes_and_fill_the_budget() -> None:
    shapes = [(32, 1, 3, 3), (64, 32, 3, 3), (1024, 3136), (1024, 1024), (10, 1024)]
    sizes = [math.prod(s) for s in shapes]
    for density in (0.01, 0.05, 0.3):
        d = unstructured.erk_densities(shapes, density)
        assert sum(x * n for x, n in zip(d, sizes, strict=True)) == pytest.approx(density * sum(sizes))
        assert all(0 < x <= 1 for x in d)
        # Density per layer ~ (sum of dims) / (product): the big FC layers the sparsest, the first conv the densest.
        assert d[0] >= d[4] >= d[1] >= d[3] > d[2]
    assert unstructured.erk_densities(shapes, 0.01)[0] < 1
    # At 30% kept the convs and the output layer would need more than all their weights: they stay dense, the
    # two big FC layers share the rest.
    at_30 = unstructured.erk_densities(shapes, 0.3)
    assert at_30[:2] == [1.0, 1.0] and at_30[4] == 1.0


@pytest.mark.parametrize("method", ["global_l1", "random"])
def test_first_and_last_layers_keep_their_floor(tiny_params: Params, trained: Path, method: str) -> None:
    def sparsities(floor: float, amount: float = 0.95, finetune: int = 0) -> dict[str, float]:
        cfg = replace(tiny_params.prune, amount=amount, finetune_epochs=finetune, method=method,
                      min_density_ends=floor)
        report = prune.run(replace(tiny_params, prune=cfg), trained)[1]
        assert report["global_sparsity"] == pytest.approx(amount, abs=1e-4)
        return {r["layer"]: r["sparsity"] for r in report["layers"]}

    plain, floored = sparsities(0.0), sparsities(0.9)
    first, last = "features.0", "classifier.7"
    assert floored[first] <= 0.1 and floored[last] <= 0.1
    assert plain[last] > 0.1  # the floor changed something: without it the output layer is sparser
    gradual = sparsities(0.9, finetune=1)  # the floor holds through every step of gradual pruning too
    assert gradual[first] <= 0.1 and gradual[last] <= 0.1
    # 99% of the 36 + 320 weights of the two end layers is more than 1% of the tiny model's 27,780 weights.
    with pytest.raises(ValueError, match="prune.min_density_ends 0.99 keeps"):
        sparsities(0.99, amount=0.99)


def test_cubic_schedule_rises_to_exactly_the_target() -> None:
    s = gradual.cubic_schedule(0.98, 10)
    assert s[-1] == pytest.approx(0.98) and all(a < b for a, b in zip(s, s[1:], strict=False))
    assert s[0] > 0.98 / 10  # cubic: most of the pruning happens early


def test_gradual_prune_with_finetune_reaches_target_and_keeps_accuracy(tiny_params: Params, trained: Path) -> None:
    params = replace(tiny_params, prune=replace(tiny_params.prune, amount=0.9, steps=4, finetune_epochs=1))
    model, report, history = prune.run(params, trained)
    total = sum(r["params"] for r in report["layers"])
    zeros = sum(r["params"] - r["nonzero"] for r in report["layers"])
    assert abs(zeros - 0.9 * total) <= 1
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=False)
    assert score(model, test)["accuracy"] > 70.0
    assert len(history) == 1


def test_prune_seed_changes_only_the_finetune(tiny_params: Params, trained: Path) -> None:
    """prune.seed reorders fine-tuning's batches: another seed, other weights; the same seed, the same bytes."""
    def pruned(seed: int) -> dict[str, torch.Tensor]:
        params = replace(tiny_params, prune=replace(tiny_params.prune, seed=seed))
        return prune.run(params, trained)[0].state_dict()

    a, b, again = pruned(0), pruned(1), pruned(0)
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["classifier.1.weight"], b["classifier.1.weight"])
    assert int(torch.count_nonzero(a["classifier.1.weight"])) > 0
    before = load_checkpoint(trained)[0].state_dict()
    assert not torch.equal(before["classifier.1.weight"], a["classifier.1.weight"])


def test_masks_hold_through_finetuning(tiny_params: Params, trained: Path) -> None:
    gen = seeded(0)
    model, _ = load_checkpoint(trained)
    total = sum(m.weight.numel() for m, _ in unstructured._targets(model))
    unstructured.global_l1(model, 3000 / total)
    masks = {id(m): m.weight_mask.clone() for m, _ in unstructured._targets(model)}
    before = {id(m): m.weight_orig.detach().clone() for m, _ in unstructured._targets(model)}
    train_split = load_split(tiny_params.data.root, train=True, limit=tiny_params.data.train_limit,
                             verify=False)
    fit(model, train_split, None, FitSpec(epochs=1, batch_size=64, lr=1e-2, weight_decay=0.1, label_smoothing=0.0,
                                               max_shift=0.0, max_rotate=0.0, max_scale=0.0, schedule="onecycle"), gen)
    unstructured.make_permanent(model)
    for m, _ in unstructured._targets(model):
        mask = masks[id(m)]
        assert torch.all(m.weight[mask == 0] == 0), "a pruned weight came back"
        assert not torch.equal(m.weight[mask == 1], before[id(m)][mask == 1]), "kept weights should train"
    assert sum(int((m.weight == 0).sum()) for m, _ in unstructured._targets(model)) == 3000


def test_evaluate_writes_the_same_keys_for_both_models(tiny_params: Params, trained: Path) -> None:
    params = replace(tiny_params, prune=replace(tiny_params.prune, finetune_epochs=0, amount=0.7))
    model, _, _ = prune.run(params, trained)
    save_checkpoint(paths.PRUNED_MODEL, model)
    results = evaluate.run(params, {"dense": paths.DENSE_MODEL, "pruned": paths.PRUNED_MODEL})
    dense, pruned = results["models"]["dense"]["metrics"], results["models"]["pruned"]["metrics"]
    assert set(dense) == set(pruned) >= {"accuracy", "loss", "latency_b1_ms", "throughput_ips", "peak_mb",
                                         "params_total", "params_nonzero", "sparsity", "checkpoint_bytes"}
    assert dense["sparsity"] < 0.01 and pruned["sparsity"] == pytest.approx(0.7, abs=1e-3)
    assert pruned["params_nonzero"] < dense["params_nonzero"] == dense["params_total"]
    assert dense["latency_b1_ms"] > 0 and dense["throughput_ips"] > 0
    # The model's own memory: at least its float32 weights, far below the ~900 MB of the process.
    assert 4 * dense["params_total"] / 2**20 < dense["peak_mb"] < 200
    assert len(results["models"]["pruned"]["preds"]) == len(results["labels"]) == params.data.test_limit
    machine = results["machine"]
    assert machine["threads"] == params.threads and machine["logical_cores"] >= machine["physical_cores"] >= 1
    assert machine["cpu"] and machine["cpu_capability"] and machine["memory_gb"] > 0
    assert machine["kernels"] == params.kernels and not machine["cpu_capability"].startswith("AVX512")
    assert machine["evaluate_peak_rss_mb"] > 50  # torch alone is hundreds of MB
    # The errors file holds exactly the misclassified images, as many as the accuracy says.
    errors = error_rows(results["labels"], results["models"]["dense"]["preds"])
    assert all(r["actual"] != r["predicted"] for r in errors)
    assert len(errors) == round(len(results["labels"]) * (1 - dense["accuracy"] / 100))
    assert error_rows([1, 2, 3], [1, 7, 3]) == [{"actual": 2, "predicted": 7}]


def test_build_model_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        build_model(conv_channels=[4, 0], hidden=[8])


def test_channel_stage_rebuilds_smaller_layers_and_an_int8_copy(tiny_params: Params, trained: Path) -> None:
    model, history = channel.run(tiny_params, trained)
    dense, _ = load_checkpoint(trained)
    # TINY: conv [4, 8] -> [2, 4]; FC [64, 32] -> [32, 16]; the 10 outputs stay.
    assert model.model_args["conv_channels"] == [2, 4] and model.model_args["hidden"] == [32, 16]
    assert model.features[0].weight.shape == (2, 1, 3, 3) and model.features[4].weight.shape == (4, 2, 3, 3)
    assert model.classifier[1].weight.shape == (32, 4 * 7 * 7) and model.classifier[-1].weight.shape == (10, 16)
    assert count_params(model) < count_params(dense) / 3
    test = load_split(tiny_params.data.root, train=False, limit=tiny_params.data.test_limit, verify=False)
    assert history[-1]["test_accuracy"] == score(model, test)["accuracy"] > 70.0
    save_checkpoint(paths.CHANNEL_MODEL, model)  # the smaller shapes survive a save and load
    assert load_checkpoint(paths.CHANNEL_MODEL)[0].model_args == model.model_args
    int8 = channel.int8_copy(tiny_params, model)
    atomic_write_bytes(paths.CHANNEL_INT8_MODEL, int8_bytes(int8, model.model_args))
    loaded = load_model(paths.CHANNEL_INT8_MODEL)
    with torch.inference_mode():
        assert torch.equal(loaded(test.images), int8(test.images))  # rebuilt without calibration, same bits
        agree = (int8(test.images).argmax(1) == model.eval()(test.images).argmax(1)).float().mean()
    assert agree > 0.95


def test_combine_prunes_the_channel_model_and_compresses_it(tiny_params: Params, trained: Path,
                                                            tmp_path: Path) -> None:
    small, _ = channel.run(tiny_params, trained)
    save_checkpoint(tmp_path / "channel.pth", small)
    data, report = combine.run(tiny_params, tmp_path / "channel.pth", trained)
    assert report["global_sparsity"] == pytest.approx(tiny_params.combine.amount, abs=1e-3)
    assert report["bytes"] == len(data) and report["times_smaller_than_dense"] == trained.stat().st_size / len(data)
    (tmp_path / "combined.bin").write_bytes(data)
    model = load_model(tmp_path / "combined.bin")
    assert model.model_args["conv_channels"] == small.model_args["conv_channels"]  # the channel model's shapes
    test = load_split(tiny_params.data.root, train=False, limit=tiny_params.data.test_limit, verify=False)
    assert score(model, test)["accuracy"] > 70.0


def test_combine_source_student_prunes_the_student_instead(tiny_params: Params, trained: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    student, _ = distill.train_student(tiny_params, None)
    save_checkpoint(tmp_path / "student.pth", student)
    monkeypatch.setitem(combine.SOURCES, "student", tmp_path / "student.pth")
    params = replace(tiny_params, combine=replace(tiny_params.combine, source="student", amount=0.85))
    data, report = combine.run(params, dense_path=trained)
    assert report["global_sparsity"] == pytest.approx(0.85, abs=1e-3)
    assert report["pruned_checkpoint_bytes"] == (tmp_path / "student.pth").stat().st_size
    (tmp_path / "combined.bin").write_bytes(data)
    assert load_model(tmp_path / "combined.bin").model_args == student.model_args  # the student's shapes
    with pytest.raises(ConfigError, match=r"combine.source must be one of \['channel', 'student'\], got 'dense'"):
        params_from_dict(tiny_dict(combine={"source": "dense"}))
    with pytest.raises(ConfigError, match="unknown key 'prune.source'"):
        params_from_dict(tiny_dict(prune={"source": "student"}))  # a combine key only


def test_removing_channels_computes_what_zeroing_them_does(tiny_params: Params, trained: Path) -> None:
    """Zeroing a channel's batch-norm scale and shift (its output is then exactly 0) and a neuron's row and
    bias gives the same function as cutting them out."""
    model, _ = load_checkpoint(trained)
    model.eval()
    keep = kept_widths(widths(model), 0.6)
    assert keep == [2, 3, 26, 13]  # round(0.6 * n) removed from 4, 8, 64, 32
    zeroed = copy.deepcopy(model)
    convs, norms, fcs = channel_layers(zeroed)
    with torch.no_grad():
        for layer, out, k in zip([*convs, *fcs[:-1]], [*norms, *fcs[:-1]], keep, strict=True):
            gone = torch.ones(len(layer.weight), dtype=torch.bool)
            gone[l1_keep(layer.weight, k)] = False
            out.weight[gone] = 0
            out.bias[gone] = 0
    prune_channels(model, keep)
    assert model.model_args["conv_channels"] == [2, 3] and model.model_args["hidden"] == [26, 13]
    x = load_split(tiny_params.data.root, train=False, limit=64, verify=False).images
    with torch.no_grad():
        assert torch.allclose(model(x), zeroed(x), atol=1e-5)


def test_removing_channels_slices_the_optimizer_state_with_them(trained: Path) -> None:
    model, _ = load_checkpoint(trained)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(8, 1, 28, 28)
    model(x).sum().backward()
    opt.step()
    fc = model.classifier[1]
    kept = l1_keep(fc.weight, 16)
    moment = opt.state[fc.weight]["exp_avg"][kept].clone()
    prune_channels(model, [4, 8, 16, 32], opt)
    assert set(map(id, opt.param_groups[0]["params"])) == set(map(id, model.parameters()))
    assert torch.equal(opt.state[fc.weight]["exp_avg"], moment)
    opt.zero_grad()
    model(x).sum().backward()  # the smaller layers train on with the same optimizer
    opt.step()


def test_nan_fill_of_new_tensors_changes_no_trained_byte(tiny_params: Params, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """runtime.setup turns deterministic mode's NaN fill off for speed: the weights must not notice."""
    for fill in (True, False):
        monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", fill)
        model, _ = train.run(tiny_params)
        save_checkpoint(tmp_path / f"fill_{fill}.pth", model)
    assert (tmp_path / "fill_True.pth").read_bytes() == (tmp_path / "fill_False.pth").read_bytes()
    setup(1, "portable")
    assert not torch.utils.deterministic.fill_uninitialized_memory


def test_training_runs_channels_last_and_saves_contiguous(tiny_params: Params, tmp_path: Path) -> None:
    model, _ = train.run(tiny_params)
    conv = model.features[4]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    save_checkpoint(tmp_path / "m.pth", model)
    assert load_checkpoint(tmp_path / "m.pth")[0].features[4].weight.is_contiguous()


def test_finetuning_the_sparse_layers_sparse_matches_the_dense_masked_run(tiny_params: Params, trained: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrapping every masked linear layer (CSR products) trains the same model as never wrapping, to rounding."""
    params = replace(tiny_params, prune=replace(tiny_params.prune, amount=0.95))
    wrapped: list[list[str]] = []
    real_wrap = sparse.wrap
    # The CSR path is native kernels' (portable keeps MKL's sparse products out): asked for explicitly here.
    monkeypatch.setattr(sparse, "wrap",
                        lambda model: wrapped.append(real_wrap(model, sparse.MAX_DENSITY)) or wrapped[-1])
    runs = {}
    for max_density in (0.0, 1.0):
        monkeypatch.setattr(sparse, "MAX_DENSITY", max_density)
        runs[max_density] = prune.run(params, trained)
    assert not any(wrapped[:params.prune.steps]), "MAX_DENSITY 0 wraps nothing"
    assert wrapped[-1] == ["classifier.1", "classifier.4", "classifier.7"]
    (dense_model, dense_report, dense_hist), (sparse_model, sparse_report, sparse_hist) = runs[0.0], runs[1.0]
    assert [type(m) for m in sparse_model.modules()] == [type(m) for m in dense_model.modules()]  # unwrapped
    assert sparse_report["global_sparsity"] == dense_report["global_sparsity"]
    a, b = dense_model.state_dict(), sparse_model.state_dict()
    for k in a:
        agree = float(((a[k] == 0) == (b[k] == 0)).float().mean())
        assert agree > 0.98, f"{k}: masks agree on only {agree:.3f}"
    assert abs(dense_hist[-1]["test_accuracy"] - sparse_hist[-1]["test_accuracy"]) <= 2.0


def test_portable_kernels_fine_tune_the_masked_layers_dense(tiny_params: Params, trained: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Under kernels: portable (the tests' process) nothing reaches MKL's CSR products by default."""
    wrapped: list[list[str]] = []
    real_wrap = sparse.wrap
    monkeypatch.setattr(sparse, "wrap", lambda model: wrapped.append(real_wrap(model)) or wrapped[-1])
    monkeypatch.setattr(sparse, "MAX_DENSITY", 1.0)
    prune.run(replace(tiny_params, prune=replace(tiny_params.prune, amount=0.95)), trained)
    assert wrapped and not any(wrapped)


def test_epochs_are_logged_with_dvclive(tiny_params: Params, in_tmp: Path) -> None:
    """Each epoch row reaches DVCLive as it ends: metrics.json holds the last, one TSV line per epoch."""
    params = replace(tiny_params, train=replace(tiny_params.train, epochs=2))
    with epoch_logger("dense") as log:
        _, history = train.run(params, on_epoch=log)
    live = in_tmp / "metrics" / "live" / "dense"
    latest = json.loads((live / "metrics.json").read_text())
    assert latest["step"] == 2 and latest["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])
    lines = (live / "plots" / "metrics" / "test_accuracy.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["step", "test_accuracy"]
    assert [int(line.split("\t")[0]) for line in lines[1:]] == [1, 2]  # epochs, not DVCLive's 0-based steps
    # The TSVs are cached outputs that must come out the same on a rerun: no timing among them.
    assert "seconds" in latest and not (live / "plots" / "metrics" / "seconds.tsv").exists()
    # One-shot pruning has no epochs: its one score is logged as epoch 0, so the stage's metrics file exists.
    save_checkpoint(paths.DENSE_MODEL, train.run(tiny_params)[0])
    with epoch_logger("pruned") as log:
        prune.run(replace(params, prune=replace(params.prune, finetune_epochs=0)), on_epoch=log)
    assert json.loads((in_tmp / "metrics" / "live" / "pruned" / "metrics.json").read_text())["step"] == 0


def test_prune_schedule_shapes_the_fine_tuning_rate(pruned_params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    """prune.schedule reaches fit(): onecycle (learning-rate rewinding) or the default cosine."""
    seen = []
    real_fit = gradual.fit  # prune's fine-tune runs through gradual.gradual_fit

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(args[3].schedule)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(gradual, "fit", spy)
    for schedule in ("cosine", "onecycle"):
        prune.run(replace(pruned_params, prune=replace(pruned_params.prune, finetune_epochs=1, schedule=schedule)))
    assert seen == ["cosine", "onecycle"]


def test_augment_zoom_scales_the_digit_and_leaves_the_old_stream_alone() -> None:
    square = torch.zeros(64, 1, 28, 28)
    square[:, :, 10:18, 10:18] = 1.0  # an 8x8 block in the middle: its ink grows with the square of the zoom
    ink = augment(square, 0.0, 0.0, torch.Generator().manual_seed(0), max_scale=0.3).sum(dim=(1, 2, 3))
    assert 0.7**2 * 64 - 8 < ink.min() < 64 - 8 and 64 + 8 < ink.max() < 1.3**2 * 64 + 8
    # Without zoom, augment draws what it always drew (n angles, then 2n shifts) and nothing more.
    gen, ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    augment(square, 2.0, 10.0, gen, max_scale=0.0)
    torch.rand(64, generator=ref), torch.rand(64, 2, generator=ref)
    assert torch.equal(torch.rand(5, generator=gen), torch.rand(5, generator=ref))
    assert torch.equal(augment(square, 0.0, 0.0, gen, max_scale=0.0), square)


def test_elastic_bends_each_image_smoothly_after_the_affine_draws() -> None:
    square = torch.zeros(16, 1, 28, 28)
    square[:, :, 10:18, 10:18] = 1.0
    gen, ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    bent = augment(square, 2.0, 10.0, gen, max_scale=0.1, elastic=34.0, elastic_sigma=4.0)
    # The affine draws come first, as without it (angles, shifts, zooms), then one field per image.
    torch.rand(16, generator=ref), torch.rand(16, 2, generator=ref), torch.rand(16, generator=ref)
    torch.rand(16, 2, 28, 28, generator=ref)
    assert torch.equal(torch.rand(5, generator=gen), torch.rand(5, generator=ref))
    # The same affine warp without the field: the field moved ink, and differently in each image.
    plain = augment(square, 2.0, 10.0, torch.Generator().manual_seed(2), max_scale=0.1)
    moved = (bent - plain).abs().sum(dim=(1, 2, 3))
    assert moved.min() > 1.0 and len(set(moved.tolist())) == 16
    # A bend, not a jump: the ink's centre stays within a few pixels of where the affine warp put it.
    grid = torch.arange(28.0)

    def centre(x: torch.Tensor) -> torch.Tensor:
        w = x[:, 0] / x[:, 0].sum(dim=(1, 2), keepdim=True)
        return torch.stack([(w.sum(2) * grid).sum(1), (w.sum(1) * grid).sum(1)], 1)

    assert (centre(bent) - centre(plain)).norm(dim=1).max() < 4.0
    # Alone it still runs (no early return), and its offsets scale with elastic and vary smoothly.
    assert not torch.equal(augment(square, 0.0, 0.0, torch.Generator().manual_seed(0), elastic=10.0), square)
    offsets = elastic_offsets(64, 28, 28, 34.0, 4.0, torch.Generator().manual_seed(3))
    twice = elastic_offsets(64, 28, 28, 68.0, 4.0, torch.Generator().manual_seed(3))
    assert offsets.shape == (64, 28, 28, 2) and torch.allclose(twice, 2 * offsets)
    px = offsets * 14  # grid units to pixels
    assert 1.0 < px.norm(dim=-1).mean() < 3.5  # about 2 px, as Simard et al.'s 34 and 4
    # From one pixel to the next an offset changes by a fraction of its size, down and across.
    down, across = (px[:, 1:] - px[:, :-1]).abs().mean(), (px[:, :, 1:] - px[:, :, :-1]).abs().mean()
    assert max(down, across) < 0.25 * px.abs().mean()
    rough = elastic_offsets(64, 28, 28, 34.0, 1.0, torch.Generator().manual_seed(3)) * 14
    assert (rough[:, 1:] - rough[:, :-1]).abs().mean() > 2 * down  # a smaller sigma: a rougher field


def test_distill_elastic_reaches_the_students_fit(tiny_params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_fit = recipes.fit

    def spy(*args: object, **kwargs: object) -> object:
        seen.append((args[3].elastic, args[3].elastic_sigma))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(recipes, "fit", spy)
    params = replace(tiny_params, distill=replace(tiny_params.distill, alpha=0.0, elastic=20.0, elastic_sigma=3.0))
    distill.train_student(params, None)
    assert seen == [(20.0, 3.0)]
