"""Training a masked linear layer at the cost of its nonzero weights only.

A layer pruned with torch.nn.utils.prune still multiplies every zero: its forward pre-hook rebuilds the
dense weight (weight_orig * weight_mask) and F.linear runs the full matrix product, forward and backward.
At 95% sparsity that is 20x the arithmetic that matters. While a mask holds still, SparseLinear runs the
same layer on the kept weights only (CSR products forward and for the input's gradient, a sampled product
for the weights' gradient) and hands the gradient back to the same dense `weight_orig` Parameter, so the
optimizer and its state never notice the swap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from bignn import matmul

# At or below this fraction of kept weights the CSR products beat the dense one, with a margin
# (`python -m commands profile sparse-linear`, 2-core AMD EPYC: FC1 forward + backward 11.1 ms at 5% kept,
# 22.2 at 15%, 27.7 at 20%, against 24.7-25.3 ms dense at any density).
MAX_DENSITY = 0.15



def _csr(*args: object, **kwargs: object) -> torch.Tensor:
    """torch.sparse_csr_tensor without the warning torch gives on every construction (CSR is beta): CSR
    tensors are what this module is for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(*args, **kwargs)


@dataclass(frozen=True)
class Pattern:
    """Where the kept weights of an (out, in) matrix are, in CSR order, and the same set in CSC order."""

    shape: tuple[int, int]
    flat: torch.Tensor  # row * in + col of each kept weight, row-major (CSR) order
    crow: torch.Tensor
    col: torch.Tensor
    crow_t: torch.Tensor  # the transpose's CSR, i.e. the matrix's CSC
    col_t: torch.Tensor
    to_t: torch.Tensor  # CSR position of the transpose's k-th value

    @staticmethod
    def of(mask: torch.Tensor) -> Pattern:
        out_f, in_f = mask.shape
        rows, cols = torch.nonzero(mask, as_tuple=True)  # row-major
        to_t = torch.argsort(cols * out_f + rows)
        return Pattern(shape=(out_f, in_f), flat=rows * in_f + cols,
                       crow=_crow(rows, out_f), col=cols, crow_t=_crow(cols[to_t], in_f), col_t=rows[to_t],
                       to_t=to_t)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, self.shape, check_invariants=False)

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow_t, self.col_t, values[self.to_t], self.shape[::-1],
                                       check_invariants=False)


def _crow(sorted_rows: torch.Tensor, n: int) -> torch.Tensor:
    counts = torch.bincount(sorted_rows, minlength=n)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


class _SparseLinearFn(torch.autograd.Function):
    """x (B, in) -> x @ W.T, reading and differentiating W (out, in) only where the pattern keeps it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, pattern: Pattern) -> torch.Tensor:
        values = weight.reshape(-1).index_select(0, pattern.flat)
        ctx.save_for_backward(x, values)
        ctx.pattern = pattern
        return torch.sparse.mm(pattern.matrix(values), x.t().contiguous()).t()

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, values = ctx.saved_tensors
        pattern: Pattern = ctx.pattern
        gy_t = grad_y.t().contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.sparse.mm(pattern.transposed(values), gy_t).t()
        if ctx.needs_input_grad[1]:
            # dL/dW only where W is kept (row i, col j of grad_y.T @ x for the pattern's (i, j) alone), and
            # exact zeros elsewhere, as the mask's own gradient would give.
            kept = torch.sparse.sampled_addmm(pattern.matrix(values), gy_t, x, beta=0.0).values()
            grad_w = values.new_zeros(pattern.shape[0] * pattern.shape[1]).index_copy_(0, pattern.flat, kept)
            grad_w = grad_w.view(pattern.shape)
        return grad_x, grad_w, None


class SparseLinear(nn.Module):
    """Runs a pruned nn.Linear (held as `.linear`, Parameters untouched) on its kept weights only.

    The mask must not change while wrapped: unwrap, prune, wrap again.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.pattern = Pattern.of(linear.weight_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _SparseLinearFn.apply(x, self.linear.weight_orig, self.pattern)
        return y if self.linear.bias is None else y + self.linear.bias


def _density(linear: nn.Linear) -> float:
    return float(linear.weight_mask.float().mean())


def wrap(model: nn.Module, max_density: float | None = None) -> list[str]:
    """Swap every masked nn.Linear kept at or below max_density (default MAX_DENSITY) for a SparseLinear;
    returns their names.

    By default nothing is swapped under kernels: portable: torch's CSR products run in MKL's sparse routines,
    which are not known to sum in the same order on every CPU, and portable keeps MKL out of training. The
    masked layers then train dense through oneDNN (matmul), to the same zeros.
    """
    if max_density is None and matmul.installed():
        return []
    max_density = MAX_DENSITY if max_density is None else max_density
    swapped = []
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.Linear) and hasattr(child, "weight_mask")
                    and _density(child) <= max_density):
                setattr(parent, name, SparseLinear(child))
                swapped.append(f"{parent_name}.{name}".lstrip("."))
    return swapped


def unwrap(model: nn.Module) -> None:
    """Put the plain (still masked) nn.Linear layers back, e.g. before the masks change or the model is saved.

    A wrapped layer's pruning hook has not run since it was wrapped, so its `weight` attribute is stale; the
    hook runs once here, as a forward would, so pruning scores and prune.remove see the current weights.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SparseLinear):
                for hook in child.linear._forward_pre_hooks.values():
                    if isinstance(hook, prune.BasePruningMethod):
                        hook(child.linear, ())
                setattr(parent, name, child.linear)
