"""SparseLinear: the same layer as a pruned nn.Linear, computed on its kept weights only."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bignn.pruning import sparse


def _pruned_linear(amount: float, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    lin = nn.Linear(60, 24)
    prune.l1_unstructured(lin, "weight", amount=amount)
    return lin


def test_pattern_rebuilds_the_matrix_and_its_transpose() -> None:
    lin = _pruned_linear(0.9)
    dense = (lin.weight_orig * lin.weight_mask).detach()
    pattern = sparse.Pattern.of(lin.weight_mask)
    values = dense.reshape(-1)[pattern.flat]
    assert len(values) == int(lin.weight_mask.sum())
    assert torch.equal(pattern.matrix(values).to_dense(), dense)
    assert torch.equal(pattern.transposed(values).to_dense(), dense.t())


def test_sparse_layer_computes_what_the_masked_dense_layer_does() -> None:
    lin = _pruned_linear(0.9)
    x = torch.randn(16, 60, requires_grad=True)
    lin(x).square().sum().backward()
    dense_grad_w, dense_grad_x, dense_grad_b = lin.weight_orig.grad.clone(), x.grad.clone(), lin.bias.grad.clone()
    lin.zero_grad()
    x.grad = None

    model = nn.Sequential(lin)
    assert sparse.wrap(model, sparse.MAX_DENSITY) == ["0"]
    y = model(x)
    assert torch.allclose(y, (x @ (lin.weight_orig * lin.weight_mask).t() + lin.bias), atol=1e-5)
    y.square().sum().backward()
    # The gradient reaches the same dense Parameter, zero wherever the mask is.
    assert torch.allclose(lin.weight_orig.grad, dense_grad_w, atol=1e-4)
    assert torch.count_nonzero(lin.weight_orig.grad[lin.weight_mask == 0]) == 0
    assert torch.allclose(x.grad, dense_grad_x, atol=1e-5)
    assert torch.allclose(lin.bias.grad, dense_grad_b, atol=1e-5)
    with torch.inference_mode():
        assert torch.allclose(model(x.detach()), y.detach())


def test_only_sparse_enough_masked_layers_are_wrapped() -> None:
    model = nn.Sequential(_pruned_linear(0.9), nn.ReLU(), _pruned_linear(0.5), nn.Linear(24, 3))
    assert sparse.wrap(model, max_density=0.25) == ["0"]
    assert isinstance(model[0], sparse.SparseLinear)
    assert isinstance(model[2], nn.Linear) and isinstance(model[3], nn.Linear)


def test_unwrap_restores_the_same_parameters_with_current_weights() -> None:
    lin = _pruned_linear(0.9)
    model = nn.Sequential(lin)
    params_before = [id(p) for p in model.parameters()]
    sparse.wrap(model, sparse.MAX_DENSITY)
    assert [id(p) for p in model.parameters()] == params_before  # the optimizer keeps its state
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(8, 60)).sum().backward()
    opt.step()
    sparse.unwrap(model)
    assert model[0] is lin
    # `weight` (what pruning scores read) follows the step taken while wrapped, and the mask still holds.
    assert torch.equal(lin.weight, lin.weight_orig * lin.weight_mask)
    assert torch.count_nonzero(lin.weight[lin.weight_mask == 0]) == 0


@pytest.mark.parametrize("amount", [0.5, 0.99])
def test_wrapping_keeps_the_masked_layer_training_the_same(amount: float) -> None:
    """A few SGD steps wrapped and unwrapped land on the same weights (to float rounding)."""
    runs = []
    for wrapped in (False, True):
        lin = _pruned_linear(amount)
        model = nn.Sequential(lin)
        if wrapped:
            sparse.wrap(model, max_density=1.0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(8, 60, generator=gen)).square().mean().backward()
            opt.step()
        sparse.unwrap(model)
        runs.append((lin.weight_orig * lin.weight_mask).detach())
    assert torch.allclose(runs[0], runs[1], atol=1e-5)
