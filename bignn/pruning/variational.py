"""Sparse variational dropout (Molchanov et al. 2017): which weights to keep, learned instead of read off their
magnitude.

While it trains, every conv and linear weight w is multiplied by Gaussian noise of mean 1 and variance alpha
(its own, learned), and the loss adds the KL divergence to a log-uniform prior, which pays a weight for a
large alpha. A weight the labels need keeps a small alpha; one they do not drifts to noise larger than itself
(log alpha above ~3), and can go. `learn_log_alpha` trains a model so and returns each layer's log alpha;
unstructured.global_vd then keeps the weights with the lowest, ranked across all layers.

The noise is drawn per output, not per weight (the local reparameterization trick): an output of mean
layer(x; w) has variance layer(x^2; alpha w^2), so a step costs two of the layer's products and one draw per
output. The draws come from a generator of the layer's own, seeded from the run's generator when the dropout
epochs start: what they draw depends on the run's seed alone, not on whatever else used torch's global RNG
before (building a model draws its initial weights from it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bignn.data import Split
from bignn.model import prunable
from bignn.training import CPU, FitSpec, fit

# The KL divergence from the log-uniform prior, as a function of log alpha alone: the paper's fitted curve.
K1, K2, K3 = 0.63576, 1.87320, 1.48695
# log alpha is held in [-10, 10] inside the loss: beyond it the noise is either nothing or all there is, and the
# KL term's gradient vanishes.
LOG_ALPHA_RANGE = 10.0
# The KL weight rises from 0 to its full value over this fraction of the steps: first the noise's scales
# (initially tiny) find their level on the data term alone, as the paper's warm-up does.
KL_WARMUP = 1 / 3


class Variational(nn.Module):
    """A conv or linear layer (held as `.layer`, its Parameters untouched) with a learned log sigma^2 per weight;
    its noise comes from `noise` (a generator on the layer's device), or torch's global RNG without one."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, noise: torch.Generator | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.noise = noise
        # sigma^2 = e^-10: alpha starts near 0 for any weight larger than ~0.01, i.e. the layer as it was.
        self.log_sigma2 = nn.Parameter(torch.full_like(layer.weight, -10.0))

    def log_alpha(self) -> torch.Tensor:
        """log(sigma^2 / w^2), unclamped: what the weights are ranked by."""
        w = self.layer.weight
        return self.log_sigma2 - torch.log(w * w + 1e-8)

    def kl(self) -> torch.Tensor:
        la = self.log_alpha().clamp(-LOG_ALPHA_RANGE, LOG_ALPHA_RANGE)
        return -(K1 * torch.sigmoid(K2 + K3 * la) - 0.5 * F.softplus(-la) - K1).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.layer(x)
        if not self.training:
            return mean
        la = self.log_alpha().clamp(-LOG_ALPHA_RANGE, LOG_ALPHA_RANGE)
        var_w = torch.exp(la) * self.layer.weight ** 2
        if isinstance(self.layer, nn.Conv2d):
            var = F.conv2d(x * x, var_w, None, self.layer.stride, self.layer.padding, self.layer.dilation,
                           self.layer.groups)
        else:
            var = F.linear(x * x, var_w)
        # Drawn in the default layout: into a channels-last tensor torch draws one number at a time, 9x slower.
        noise = torch.randn(mean.shape, generator=self.noise, dtype=mean.dtype, device=mean.device)
        return mean + torch.sqrt(var + 1e-8) * noise


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def learn_log_alpha(model: nn.Module, spec: FitSpec, beta: float, train: Split, gen: torch.Generator,
                    device: torch.device = CPU) -> dict[nn.Module, torch.Tensor]:
    """Train `model` (in place: its weights move) with variational dropout on every conv and linear layer for
    spec.epochs, the loss spec's cross-entropy plus beta times the KL term per training image (beta ramps up over
    the first KL_WARMUP of the steps); returns each such layer's log alpha (contiguous, on the CPU). The model
    comes back plain, on the CPU. The noise is drawn from one generator on `device`, seeded by a draw from
    `gen`."""
    noise = torch.Generator(device=device)
    noise.manual_seed(int(torch.randint(2**62, (), generator=gen)))
    wrapped = [(name, Variational(m, noise)) for name, m in prunable(model)]
    for name, v in wrapped:
        _swap(model, name, v)
    total = spec.epochs * -(-len(train) // spec.batch_size)
    warmup = max(1, int(KL_WARMUP * total))
    step = 0

    def loss_fn(logits: torch.Tensor, _x: torch.Tensor, labels: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        nonlocal step
        weight = beta * min(1.0, step / warmup)
        step += 1
        kl = torch.stack([v.kl() for _, v in wrapped]).sum()
        return F.cross_entropy(logits, labels, label_smoothing=spec.label_smoothing) + weight * kl / len(train)

    try:
        fit(model, train, None, spec, gen, loss_fn=loss_fn, desc="variational dropout", device=device)
    finally:
        for name, v in wrapped:
            _swap(model, name, v.layer)
    with torch.no_grad():
        return {v.layer: v.log_alpha().cpu().contiguous() for _, v in wrapped}


__all__ = ["Variational", "learn_log_alpha"]
