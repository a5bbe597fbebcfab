"""Trained quantization (bignn/codebook.py): a decoded k-means file's shared values trained, its positions and
indices held, and coded again into a file of the same positions and indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bignn import compression, paths
from bignn.codebook import tune_codebooks
from bignn.config import ConfigError, Params, params_from_dict, replace
from bignn.data import split_of
from bignn.entropy import kmeans_1d
from bignn.io import load_checkpoint
from bignn.model import prunable
from bignn.recipes import combined_file
from bignn.runtime import seeded
from bignn.training import FitSpec, score
from stages import compress
from tests.tiny import tiny_dict

SPEC = FitSpec(epochs=1, batch_size=64, lr=0.003, weight_decay=0.0, label_smoothing=0.1, max_shift=0.0,
               max_rotate=0.0, max_scale=0.0, schedule="cosine")


def test_kmeans_of_k_values_or_fewer_gives_them_back_exactly() -> None:
    rng = np.random.default_rng(0)
    for n in (16, 5, 1):
        distinct = rng.normal(size=n).astype(np.float32)
        values = rng.choice(distinct, 500)
        centroids, index = kmeans_1d(values, 16)
        assert len(centroids) == 16 and np.all(np.diff(centroids) >= 0)
        assert np.array_equal(centroids[index], values), n  # every value its own centroid, none merged


def _groups(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Each layer's partition of its weights by value: the index of each weight's value among the layer's
    sorted distinct values (0 for a pruned weight), what the file's positions and indices stream codes."""
    out = {}
    for name, m in prunable(model):
        w = m.weight.detach().numpy()
        out[name] = np.searchsorted(np.unique(w), w)
    return out


def test_tuning_moves_the_values_and_holds_positions_and_indices(pruned_params: Params) -> None:
    params = replace(pruned_params, compress=replace(pruned_params.compress, coder="range", quantizer="kmeans",
                                                     bits=4))
    model = load_checkpoint(paths.PRUNED_MODEL)[0]
    data, _ = compression.compress_model(params.compress, model, 1, 1)
    decoded = compression.decode_file(data)
    before, dropout = _groups(decoded), [m.p for m in decoded.modules() if isinstance(m, torch.nn.Dropout)]
    weights = {name: m.weight.detach().clone() for name, m in prunable(decoded)}
    train = split_of(params.data, train=True)
    tune_codebooks(decoded, SPEC, train, seeded(0))
    after = _groups(decoded)
    for name, m in prunable(decoded):
        w = m.weight.detach().numpy()
        assert np.array_equal(w == 0, weights[name].numpy() == 0), name  # zeros stay, and only they are zero
        # The weights that shared a value share one still (the order of the values may change).
        assert all(len(np.unique(w[before[name] == g])) == 1 for g in np.unique(before[name])), name
        assert not torch.equal(m.weight, weights[name]), name  # and the values moved
        assert len(np.unique(w[w != 0])) <= 16
    # The batch norms still apply their shift alone, and the model keeps its dropout rate.
    norms = [m for m in decoded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.running_mean.any()
                         for m in norms)
    assert [m.p for m in decoded.modules() if isinstance(m, torch.nn.Dropout)] == dropout
    # Coded again: the positions stream is the same bytes, and the file decodes to the trained values (float16).
    again, _ = compression.compress_model(params.compress, decoded, 1, 1)
    assert compression.range_parts(compression.decode_file(data), 4, "kmeans")["positions"] == \
        compression.range_parts(compression.decode_file(again), 4, "kmeans")["positions"]
    rebuilt, trained = compression.decode_file(again), dict(prunable(decoded))
    for name, m in prunable(rebuilt):
        assert torch.allclose(m.weight, trained[name].weight.detach(), rtol=2 ** -10, atol=1e-6), name
        assert np.array_equal(_groups(rebuilt)[name], after[name]), name


def test_a_model_with_batch_norms_of_its_own_is_refused(pruned_params: Params) -> None:
    model = load_checkpoint(paths.PRUNED_MODEL)[0]  # trained batch norms: not what a range file decodes to
    with pytest.raises(ValueError, match="must be folded"):
        tune_codebooks(model, SPEC, split_of(pruned_params.data, train=True), seeded(0))


def test_combined_file_trains_the_values_only_when_asked(pruned_params: Params) -> None:
    params = replace(pruned_params, compress=replace(pruned_params.compress, coder="range", quantizer="kmeans",
                                                     bits=4))
    model = load_checkpoint(paths.PRUNED_MODEL)[0]
    train, test = split_of(params.data, train=True), split_of(params.data, train=False)
    plain, _ = combined_file(params, model, 1, 1, train, seeded(0))
    assert plain == compression.compress_model(params.compress, model, 1, 1)[0]
    tuned_params = replace(params, combine=replace(params.combine, codebook_epochs=2, codebook_lr=0.003))
    tuned, report = combined_file(tuned_params, model, 1, 1, train, seeded(0))
    assert tuned != plain and report["bytes"] == len(tuned)
    assert tuned == combined_file(tuned_params, model, 1, 1, train, seeded(0))[0]  # reproducible
    # Trained on the training images' loss, the file does not score worse there than the plain one.
    a, b = (score(compression.decode_file(d), train)["loss"] for d in (plain, tuned))
    assert b < a, (a, b)
    assert score(compression.decode_file(tuned), test)["accuracy"] > 50


@pytest.mark.parametrize("section", ["prune", "combine"])
def test_codebook_epochs_need_a_range_kmeans_file(section: str) -> None:
    for coding in ({"quantizer": "uniform", "coder": "range"}, {"quantizer": "uniform", "coder": "lzma"}):
        with pytest.raises(ConfigError, match=f"{section}.codebook_epochs must be 0 unless compress.quantizer is "
                                              "kmeans and compress.coder range"):
            params_from_dict(tiny_dict(**{section: {"codebook_epochs": 2}}, compress=coding))
    with pytest.raises(ConfigError, match=f"{section}.codebook_epochs must be an integer >= 0, got -1"):
        params_from_dict(tiny_dict(**{section: {"codebook_epochs": -1}}))
    with pytest.raises(ConfigError, match=f"{section}.codebook_lr must be a number > 0, got 0"):
        params_from_dict(tiny_dict(**{section: {"codebook_lr": 0}}))


def test_the_compress_stage_trains_the_values_with_prune_codebook_epochs(pruned_params: Params) -> None:
    """prune.codebook_epochs does for models/compressed.bin what combine.codebook_epochs does for the combined
    file: the same positions, trained values, the same file on every run; 0 leaves it as fitted."""
    params = replace(pruned_params, compress=replace(pruned_params.compress, coder="range", quantizer="kmeans",
                                                     bits=4))
    plain, _ = compress.run(params)
    model = load_checkpoint(paths.PRUNED_MODEL)[0]
    assert plain == compression.compress_model(params.compress, model, 1, 1)[0]
    tuned_params = replace(params, prune=replace(params.prune, codebook_epochs=1, codebook_lr=0.003))
    tuned, report = compress.run(tuned_params)
    assert tuned != plain and report["bytes"] == len(tuned)
    assert tuned == compress.run(tuned_params)[0]  # reproducible: seeded by prune.seed
    positions = [compression.range_parts(compression.decode_file(d), 4, "kmeans")["positions"]
                 for d in (plain, tuned)]
    assert positions[0] == positions[1]
    train = split_of(params.data, train=True)
    a, b = (score(compression.decode_file(d), train)["loss"] for d in (plain, tuned))
    assert b < a, (a, b)
