"""Sparse variational dropout: the noisy layer's moments, a ranking that finds the one useful input, and
global_vd through prune_model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bignn.config import Params, replace
from bignn.data import Split, split_of
from bignn.model import build_model, prunable
from bignn.pruning import variational
from bignn.pruning.unstructured import global_vd, layer_sparsity, prune_model
from bignn.runtime import seeded
from bignn.training import FitSpec


def test_variational_layer_is_the_layer_in_eval_and_has_its_moments_in_training() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(4, 3, bias=False)
    v = variational.Variational(linear)
    with torch.no_grad():
        v.log_sigma2.copy_(torch.log(0.25 * (linear.weight ** 2 + 1e-8)))  # alpha = 0.25 everywhere
    x = torch.randn(1, 4).expand(40_000, 4)
    assert torch.equal(v.eval()(x), linear(x))
    with torch.no_grad():
        out = v.train()(x)
    # Each output's mean is the layer's, its variance sum_i x_i^2 alpha w_i^2 (the local reparameterization).
    want_var = (x[:1] ** 2) @ (0.25 * linear.weight ** 2).T
    assert torch.allclose(out.mean(0), linear(x[:1])[0], atol=4 * want_var.sqrt().max().item() / 200)
    assert torch.allclose(out.var(0), want_var[0], rtol=0.05)
    assert torch.allclose(v.log_alpha(), torch.full((3, 4), float(torch.log(torch.tensor(0.25)))), atol=1e-4)


def test_kl_rewards_noise() -> None:
    v = variational.Variational(nn.Linear(2, 1))
    kls = []
    for log_sigma2 in (-12.0, -4.0, 4.0):
        with torch.no_grad():
            v.log_sigma2.fill_(log_sigma2)
            kls.append(float(v.kl()))
    assert kls[0] > kls[1] > kls[2] >= 0  # the prior pays a weight for being noisy


def _one_useful_input(n: int = 2000) -> Split:
    """8 inputs (as 1 x 1 x 8 images), the label the sign of the first; the other seven are noise."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 1, 8, generator=gen)
    return Split(x, (x[:, 0, 0, 0] > 0).long())


def test_learned_ranking_keeps_the_useful_input_and_returns_a_plain_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = FitSpec(epochs=15, batch_size=100, lr=0.02, weight_decay=0.0, label_smoothing=0.0, max_shift=0.0,
                   max_rotate=0.0, max_scale=0.0, schedule="cosine")
    log_alpha = variational.learn_log_alpha(model, spec, 1.0, _one_useful_input(), seeded(0))

    assert isinstance(model[1], nn.Linear) and model.state_dict().keys() == before.keys()
    assert not torch.equal(model[1].weight, before["1.weight"])  # the weights trained too
    la = log_alpha[model[1]]
    assert la.shape == (2, 8) and la.is_contiguous()
    assert la[:, 0].max() < la[:, 1:].min()  # the useful input's weights are the least noisy
    global_vd(model, 0.875, log_alpha)  # keep 2 of the 16
    assert torch.equal(model[1].weight_mask[:, 0], torch.ones(2))
    assert int(model[1].weight_mask.sum()) == 2


def test_noise_follows_the_runs_generator_not_torchs_global_rng() -> None:
    # The combine stage builds its model (drawing from torch's global RNG) before it prunes; the seeds command
    # once did not: the dropout's noise, and so the file, must depend on the run's seed alone.
    torch.manual_seed(0)
    start = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    spec = FitSpec(epochs=2, batch_size=100, lr=0.02, weight_decay=0.0, label_smoothing=0.0, max_shift=0.0,
                   max_rotate=0.0, max_scale=0.0, schedule="cosine")
    runs = []
    for drawn_before, run_seed in ((0, 0), (5, 0), (0, 1)):
        gen = seeded(run_seed)
        torch.rand(drawn_before)  # as building a model between seeding and pruning does
        model = copy.deepcopy(start)
        log_alpha = variational.learn_log_alpha(model, spec, 1.0, _one_useful_input(), gen)
        runs.append((log_alpha[model[1]], model[1].weight.detach().clone()))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not torch.equal(runs[0][0], runs[2][0])


def test_prune_model_with_global_vd_reaches_the_amount(tiny_params: Params) -> None:
    cfg = replace(tiny_params.prune, method="global_vd", vd_epochs=1, amount=0.6, finetune_epochs=1, steps=2)
    model = build_model([4, 8], [16])
    train = split_of(tiny_params.data, train=True)
    test = split_of(tiny_params.data, train=False)
    report, history = prune_model(model, cfg, tiny_params.train, train, test, seeded(0))
    total = sum(m.weight.numel() for _, m in prunable(model))
    assert report["global_sparsity"] == pytest.approx(round(0.6 * total) / total)
    assert report["layers"] == layer_sparsity(model) and len(history) == 1
    assert not any(isinstance(m, variational.Variational) for m in model.modules())
    assert all(not n.endswith(("_orig", "_mask", "log_sigma2")) for n in model.state_dict())
