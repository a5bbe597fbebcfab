"""The deliberately over-parameterized CNN."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# MNIST's pixel mean and std: the model normalizes its own input, so any caller feeds plain [0, 1] images.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class BigCNN(nn.Module):
    """[conv3x3 -> BN -> maxpool2 -> ReLU] per conv width, then FC layers with dropout, then 10 logits.

    The pool comes before the ReLU: max-pooling and ReLU commute exactly (the same outputs and the same
    gradients, bit for bit), and the ReLU then runs on a quarter of the values, forward and backward: ~5% of a
    training step on 2 cores. relu_before_pool gives the textbook order for tools that match it."""

    def __init__(self, conv_channels: list[int], hidden: list[int], dropout: float = 0.0,
                 num_classes: int = 10) -> None:
        super().__init__()
        # Kept so a checkpoint can store what rebuilds this exact model (shrunken ones included).
        self.model_args = {"conv_channels": list(conv_channels), "hidden": list(hidden),
                           "dropout": dropout, "num_classes": num_classes}
        layers: list[nn.Module] = []
        c_in, side = 1, 28
        for c_out in conv_channels:
            # BN follows every conv, so a conv bias would be redundant.
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.MaxPool2d(2), nn.ReLU(inplace=True)]
            c_in, side = c_out, side // 2
        self.features = nn.Sequential(*layers)
        fc: list[nn.Module] = [nn.Flatten()]
        f_in = c_in * side * side
        for f_out in hidden:
            fc += [nn.Linear(f_in, f_out), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            f_in = f_out
        fc.append(nn.Linear(f_in, num_classes))
        self.classifier = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((x - MNIST_MEAN) / MNIST_STD))


def relu_before_pool(model: BigCNN) -> BigCNN:
    """The same function with each conv block as conv, BN, ReLU, pool (in place; returns the model).

    torch.ao's FX quantization fuses conv + BN + ReLU into one int8 op, and ONNX runtimes fuse a Conv with the
    Relu that follows it; both look for the ReLU right after the BN. The module names come out as they were
    before the pool moved (the ReLU features.2, the pool features.3), so int8 and ONNX files keep their bytes."""
    layers = list(model.features)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    model.features = nn.Sequential(*layers)
    return model


def build_model(conv_channels: list[int], hidden: list[int], dropout: float = 0.0,
                num_classes: int = 10) -> BigCNN:
    if not conv_channels or not all(isinstance(c, int) and c > 0 for c in [*conv_channels, *hidden]):
        raise ValueError(f"channel and neuron counts must be positive integers, got {conv_channels}, {hidden}")
    if len(conv_channels) > 4:
        raise ValueError("at most 4 conv blocks fit a 28x28 input")
    return BigCNN(list(conv_channels), list(hidden), float(dropout), int(num_classes))


def model_args_from(cfg: Any) -> dict[str, Any]:
    """The constructor arguments stored beside the weights, so a checkpoint rebuilds its own model."""
    return {"conv_channels": list(cfg.conv_channels), "hidden": list(cfg.hidden), "dropout": cfg.dropout}


def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer: the weights that pruning may remove and sparsity is measured over."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
