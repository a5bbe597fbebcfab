"""RigL regrowth: the straight-through gradient, the swap, its schedule, and prune.regrow end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from bignn import paths
from bignn.config import Params, replace
from bignn.io import save_checkpoint
from bignn.pruning import regrow
from stages import prune, train


def _pruned_linear(amount: float = 0.5) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    tprune.l1_unstructured(layer, "weight", amount=amount)
    return layer


def test_straight_through_keeps_the_forward_and_reaches_pruned_weights() -> None:
    layer = _pruned_linear()
    x = torch.randn(3, 6)
    before = layer(x)
    regrow.straight_through(layer)
    after = layer(x)
    assert torch.equal(before, after)
    assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
    after.sum().backward()
    pruned = layer.weight_mask == 0
    assert (layer.weight_orig.grad[pruned] != 0).all()  # a plain mask would give exact zeros here
    # prune.remove goes through the same hook: the stored weight is still orig * mask.
    expected = (layer.weight_orig * layer.weight_mask).detach()
    tprune.remove(layer, "weight")
    assert torch.equal(layer.weight.detach(), expected)


def test_regrow_moves_the_smallest_kept_to_the_largest_gradients_at_zero() -> None:
    layers = [_pruned_linear(), _pruned_linear(0.75)]
    for m in layers:
        m.weight_orig.grad = torch.rand_like(m.weight_orig)
    kept = [m.weight_mask.clone() for m in layers]
    n_kept = sum(int(k.sum()) for k in kept)
    smallest = min(float(m.weight_orig.detach().abs()[m.weight_mask > 0].min()) for m in layers)
    largest = max(float(m.weight_orig.grad[m.weight_mask == 0].max()) for m in layers)

    moved = regrow.regrow(layers, 0.25)

    assert moved == int(0.25 * n_kept) > 0
    assert sum(int(m.weight_mask.sum()) for m in layers) == n_kept  # same size, other places
    dropped = [(k > 0) & (m.weight_mask == 0) for k, m in zip(kept, layers, strict=True)]
    grown = [(k == 0) & (m.weight_mask > 0) for k, m in zip(kept, layers, strict=True)]
    assert sum(int(d.sum()) for d in dropped) == moved == sum(int(g.sum()) for g in grown)
    assert any(bool((m.weight_orig.grad[g] == largest).any()) for m, g in zip(layers, grown, strict=True))
    for m, g in zip(layers, grown, strict=True):
        assert (m.weight_orig[m.weight_mask == 0] == 0).all()  # dropped weights zeroed
        assert (m.weight_orig[g] == 0).all()  # grown ones start at zero (they held values before the swap)
    assert smallest not in {float(v) for m in layers for v in m.weight_orig.detach().abs()[m.weight_mask > 0]}


def test_regrow_without_a_gradient_or_a_mask_moves_nothing() -> None:
    layer = _pruned_linear()
    mask = layer.weight_mask.clone()
    assert regrow.regrow([layer], 0.5) == 0
    assert torch.equal(layer.weight_mask, mask)
    assert regrow.regrow([nn.Linear(3, 2)], 0.5) == 0


def test_fraction_decays_from_the_ramp_end_to_zero_at_until() -> None:
    total, ramp_end, start = 1000, 400, 0.1
    stop = int(regrow.UNTIL * total)
    assert regrow.fraction(ramp_end, ramp_end, total, start) == 0
    assert regrow.fraction(ramp_end + 1, ramp_end, total, start) == pytest.approx(start, rel=1e-3)
    assert regrow.fraction((ramp_end + stop) // 2 + 1, ramp_end, total, start) == pytest.approx(start / 2, abs=1e-3)
    assert regrow.fraction(stop, ramp_end, total, start) == 0
    values = [regrow.fraction(s, ramp_end, total, start) for s in range(ramp_end + 1, stop)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_prune_regrow_keeps_the_sparsity_and_moves_the_mask(tiny_params: Params, in_tmp: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dense, _ = train.run(tiny_params)
    save_checkpoint(paths.DENSE_MODEL, dense)
    moved: list[int] = []
    real = regrow.regrow
    monkeypatch.setattr(regrow, "regrow", lambda layers, frac: moved.append(real(layers, frac)) or moved[-1])
    # 32 steps in the tiny split's epoch: the ramp takes the first 9, the mask moves every 2 steps until 24.
    cfg = replace(tiny_params.prune, amount=0.9, finetune_epochs=1, ramp=0.3, regrow=0.3, regrow_every=2)
    model, report, _ = prune.run(replace(tiny_params, prune=cfg))
    assert report["global_sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert len(moved) == 7 and moved[0] > moved[-1] > 0  # steps 10, 12, ..., 22, the swap shrinking
    assert not any(tprune.is_pruned(m) for m in model.modules())
