"""Entropy coding of a sparse layer: where its nonzero weights are, and which codebook entry each one holds.

Positions. A pruned layer's mask is far from random: global magnitude pruning leaves some neurons with no
inputs at all and some inputs feeding no neuron, and the density differs a lot from one row (output unit)
or column (input) to the next. So the mask is coded line by line, along rows or along columns, whichever
the layer's line densities say is cheaper: each line's count of nonzeros goes into a side stream, and the
gaps between its nonzeros are range-coded with a geometric model of that line's own density
(P(gap = g) ~ (1 - p)^g p, p = count / length). That costs about log2 C(length, count) bits per line, the
least any code can pay for a line whose count is known and whose positions are otherwise random.

Values. One codebook per layer: k-means centroids (Deep Compression's weight sharing) or a uniform
per-row grid; each nonzero stores its entry's index, range-coded with the layer's own index histogram.

The range coder is `constriction`'s (queue.RangeEncoder / RangeDecoder, 32-bit words).

The decoder must rebuild exactly the probabilities the encoder used, on whatever CPU reads the file, so every
model here is computed with IEEE basic operations only (+ - * /, a running product, an exactly rounded sum).
numpy's power and log are not such: on CPUs with AVX-512 they take a vector math library's paths, which differ
in the last bit from the AVX2 ones, and a file written at numpy's AVX-512 level failed to decode at its AVX2
level (docs/reproducibility.md).
"""

from __future__ import annotations

import math
from functools import lru_cache

import constriction
import numpy as np

Encoder = constriction.stream.queue.RangeEncoder
Decoder = constriction.stream.queue.RangeDecoder


def _line_bits(counts: np.ndarray, length: int) -> float:
    """Entropy of lines of `length` slots with these nonzero counts, under each line's own density.

    Python's scalar log2 and an exact sum, not numpy's: the coding axis it decides goes into the file's bytes."""
    ps = [c / length for c in counts.tolist() if 0 < c < length]
    return -math.fsum(p * math.log2(p) + (1 - p) * math.log2(1 - p) for p in ps) * length


def random_positions_bits(mask: np.ndarray) -> float:
    """What the positions would cost if they were random at the layer's overall density: the entropy
    bound for an unstructured mask, numel * H(density) bits. The line-wise code beats it by what the mask's
    structure is worth."""
    return _line_bits(np.array([mask.sum()]), mask.size)


def best_axis(mask: np.ndarray) -> int:
    """0: code the 2-D mask row by row; 1: column by column (whichever line densities say is cheaper)."""
    rows, cols = _line_bits(mask.sum(1), mask.shape[1]), _line_bits(mask.sum(0), mask.shape[0])
    return 0 if rows <= cols else 1


@lru_cache(maxsize=4096)
def _geometric(count: int, length: int) -> constriction.stream.model.Categorical:
    """Gap model of a line with `count` nonzeros in `length` slots (a gap is at most length - 1)."""
    p = count / length
    # p (1 - p)^g as a running product (not numpy's power: see the module's docstring).
    probs = p * np.cumprod(np.concatenate(([1.0], np.full(length - 1, 1 - p))))
    # Far in the tail the product underflows, to zero or to a subnormal depending on whether the process
    # flushes subnormals (runtime.setup does): zero either way.
    probs[probs < 1e-300] = 0.0
    # perfect=False: the coder gives every gap a nonzero probability, however far in the tail.
    return constriction.stream.model.Categorical(probs / math.fsum(probs), perfect=False)


def encode_positions(mask: np.ndarray, axis: int, enc: Encoder) -> np.ndarray:
    """Range-code the gaps of every line of a 2-D bool mask; returns the per-line nonzero counts (uint32)."""
    lines = mask if axis == 0 else mask.T
    length = lines.shape[1]
    counts = lines.sum(1).astype(np.uint32)
    for line, count in zip(lines, counts.tolist(), strict=True):
        if 0 < count < length:  # an empty or a full line has nothing left to say
            gaps = np.diff(np.flatnonzero(line), prepend=-1) - 1
            enc.encode(gaps.astype(np.int32), _geometric(count, length))
    return counts


def decode_positions(shape: tuple[int, int], axis: int, counts: np.ndarray, dec: Decoder) -> np.ndarray:
    """The 2-D bool mask back from its line counts and the range-coded gaps."""
    lines = np.zeros(shape if axis == 0 else shape[::-1], dtype=bool)
    length = lines.shape[1]
    for i, count in enumerate(counts.tolist()):
        if count == length:
            lines[i] = True
        elif count > 0:
            lines[i, np.cumsum(dec.decode(_geometric(count, length), count).astype(np.int64) + 1) - 1] = True
    return lines if axis == 0 else lines.T


def _histogram_model(hist: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(hist / hist.sum(), perfect=False)


def encode_symbols(symbols: np.ndarray, alphabet: int, enc: Encoder) -> np.ndarray:
    """Range-code codebook indices with their own histogram; returns the histogram (uint32, one per entry)."""
    hist = np.bincount(symbols, minlength=alphabet).astype(np.uint32)
    if len(symbols):
        enc.encode(symbols.astype(np.int32), _histogram_model(hist))
    return hist


def decode_symbols(hist: np.ndarray, dec: Decoder) -> np.ndarray:
    count = int(hist.sum())
    return dec.decode(_histogram_model(hist), count).astype(np.int64) if count else np.zeros(0, np.int64)


def kmeans_1d(values: np.ndarray, k: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars: (k sorted float32 centroids, each value's index).

    Started at the values' k quantiles. Han et al. (2016) start evenly over [min, max] and then retrain the
    shared values; without retraining (as here) that start cost the 95% model 0.18 pt at 4 bits (99.23%),
    almost all of it in the 233-weight first conv, and the quantile start none (99.44% vs 99.41% unquantized).
    """
    v = values.astype(np.float64)
    centroids = np.quantile(v, (np.arange(k) + 0.5) / k) if len(v) else np.zeros(k)
    for _ in range(iters):
        idx = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, v)
        sums, counts = np.bincount(idx, v, minlength=k), np.bincount(idx, minlength=k)
        # An empty cluster stays where it was; sorting keeps the midpoints valid.
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
        if np.array_equal(new, centroids):
            break
        centroids = new
    centroids = centroids.astype(np.float32)
    # The final assignment against the float32 centroids the file stores.
    return centroids, np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values.astype(np.float32))
