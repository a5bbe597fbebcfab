"""Matrix products through oneDNN instead of MKL, for kernels: portable (bignn/kernels.py).

MKL's float matrix product (every linear layer, forward and backward) takes another code path on AMD than on
Intel, whatever MKL_CBWR says short of COMPATIBLE, which costs ~2.6x on the big FC layers. oneDNN's AVX2
matmul sums each output in a fixed order: along k, in blocks of 1024 whose partial sums are added in turn.
That order comes from the shapes alone, not from the thread count or the cache sizes (tested against a
sequential reference in tests/test_portable_bytes.py), and its AVX2 kernels are the same on every vendor.

The two ATen ops a linear layer and its gradients reach, `mm` and `addmm`, get a CPU kernel that calls
oneDNN's linear primitive; autograd's formulas call `mm` too, so backward goes the same way. `bmm` (the
augmentation's affine grid, through F.affine_grid) is routed as well. Other dtypes than float32 are summed in
ATen's elementwise kernels: once overridden, the original MKL kernels cannot be called.
"""

from __future__ import annotations

import warnings

import torch

_library: torch.library.Library | None = None
# Batched products with at most this many terms per sum (the augmentation's affine grid has 3) are summed
# elementwise; longer ones go through oneDNN one batch item at a time.
SHORT_K = 8


def _linear(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    # a @ b + bias as oneDNN's linear: a (m x k) times weight (n x k) transposed. A transposed view goes in as
    # it is: oneDNN reads either layout, with the same bits and no copy (checked on the big FC layer's shapes).
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), bias, "none", [], "")


def _other(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Not float32, or an empty side: not oneDNN's case."""
    return a.dtype != torch.float32 or b.dtype != torch.float32 or 0 in (*a.shape, *b.shape)


def _by_k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., m, k) @ (..., k, n) as elementwise products summed along k in turn, in ATen's elementwise kernels:
    any dtype, and for a short k (an affine grid's 3) cheaper than a call per batch item."""
    if a.shape[-1] == 0:
        return a.new_zeros((*a.shape[:-1], b.shape[-1]))
    out = a[..., :, :1] * b[..., :1, :]
    for k in range(1, a.shape[-1]):
        out = out + a[..., :, k:k + 1] * b[..., k:k + 1, :]
    return out


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if _other(a, b):
        return _by_k(a, b)
    return _linear(a, b, None)


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1, alpha: float = 1
           ) -> torch.Tensor:
    if (beta == 1 and alpha == 1 and not _other(a, b) and bias.dtype == torch.float32
            and bias.shape == (b.shape[1],)):
        return _linear(a, b, bias.contiguous())  # the linear layer's case: a bias per output
    out = _mm(a, b)
    out = out if alpha == 1 else out * alpha
    # beta 0 ignores the input, NaN and inf included, as ATen's own addmm does
    return out if beta == 0 else out + (bias if beta == 1 else bias * beta)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if _other(a, b) or a.shape[-1] <= SHORT_K:
        return _by_k(a, b)
    return torch.stack([_linear(a[i], b[i], None) for i in range(a.shape[0])])


def install() -> None:
    """Route `mm`, `addmm` and `bmm` on CPU away from MKL for the rest of the process (idempotent)."""
    global _library
    if _library is not None:
        return
    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        # torch warns once that a built-in kernel is being overridden: that is the point here.
        warnings.simplefilter("ignore", UserWarning)
        lib.impl("mm", _mm, "CPU")
        lib.impl("addmm", _addmm, "CPU")
        lib.impl("bmm", _bmm, "CPU")
    _library = lib


def installed() -> bool:
    return _library is not None
