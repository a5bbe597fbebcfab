"""Entropy coding of a sparse layer: where its nonzero weights are, and which codebook entry each one holds.

Positions. A pruned layer's mask is far from random: global magnitude pruning leaves some neurons with no
inputs at all and some inputs feeding no neuron, and the density differs a lot from one row (output unit)
or column (input) to the next. So the mask is coded line by line, along rows or along columns, whichever
costs fewer bits: first how many lines hold a nonzero and which (a whole neuron or input pruned away costs
about a bit), then each such line's count of nonzeros (uniform over 1..length), then the gaps between its
nonzeros, range-coded with a geometric model of that line's own density (P(gap = g) ~ (1 - p)^g p,
p = count / length). That costs about log2 C(length, count) bits per line, the least any code can pay for a
line whose count is known and whose positions are otherwise random.

Values. One codebook per layer: k-means centroids (Deep Compression's weight sharing) or a uniform
per-row grid; each nonzero stores its entry's index, range-coded with the layer's own index histogram, which
the stream carries first (each entry uniform over what the entries before it left).

Neither stream needs anything stored beside it but the model's shapes: line counts and histograms as side
tables were a quarter of a 2 KB file.

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
_Uniform = constriction.stream.model.Uniform


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


def _positions_bits(lines: np.ndarray) -> float:
    """What encode_positions pays for these lines (rows of a 2-D mask): which lines are used, each used line's
    count, then the gaps."""
    counts = lines.sum(1)
    used = int(np.count_nonzero(counts))
    return (math.log2(len(lines) + 1) + _line_bits(np.array([used]), len(lines))
            + used * math.log2(lines.shape[1]) + _line_bits(counts, lines.shape[1]))


def best_axis(mask: np.ndarray) -> int:
    """0: code the 2-D mask row by row; 1: column by column (whichever costs fewer bits)."""
    return 0 if _positions_bits(mask) <= _positions_bits(mask.T) else 1


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


def encode_uints(values: np.ndarray, bound: int, enc: Encoder) -> None:
    """Integers in [0, bound], log2(bound + 1) bits each (nothing when bound is 0). constriction's uniform
    model holds fewer than 2^24 symbols, so from 2^16 up a value goes as its high part, then 16 low bits."""
    values = np.asarray(values, dtype=np.int64)
    if bound == 0 or values.size == 0:
        return
    if bound < 1 << 16:
        enc.encode(values.astype(np.int32), _Uniform(bound + 1))
        return
    enc.encode((values >> 16).astype(np.int32), _Uniform((bound >> 16) + 1))
    enc.encode((values & 0xFFFF).astype(np.int32), _Uniform(1 << 16))


def decode_uints(count: int, bound: int, dec: Decoder) -> np.ndarray:
    if bound == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    if bound < 1 << 16:
        return dec.decode(_Uniform(bound + 1), count).astype(np.int64)
    high = dec.decode(_Uniform((bound >> 16) + 1), count).astype(np.int64)
    return (high << 16) | dec.decode(_Uniform(1 << 16), count).astype(np.int64)


def _encode_line(line: np.ndarray, count: int, enc: Encoder) -> None:
    """The gaps between a line's nonzeros, under its density (an empty or full line has nothing to say)."""
    if 0 < count < len(line):
        gaps = np.diff(np.flatnonzero(line), prepend=-1) - 1
        enc.encode(gaps.astype(np.int32), _geometric(count, len(line)))


def _decode_line(count: int, length: int, dec: Decoder) -> np.ndarray:
    line = np.zeros(length, dtype=bool)
    if count == length:
        line[:] = True
    elif count > 0:
        line[np.cumsum(dec.decode(_geometric(count, length), count).astype(np.int64) + 1) - 1] = True
    return line


def encode_positions(mask: np.ndarray, axis: int, enc: Encoder) -> None:
    """Range-code a 2-D bool mask along rows (axis 0) or columns: how many lines hold a nonzero and which
    (pruning empties whole neurons and inputs), each such line's count, then each line's gaps."""
    lines = mask if axis == 0 else mask.T
    counts = lines.sum(1)
    used = np.flatnonzero(counts)
    encode_uints(np.array([len(used)]), len(lines), enc)
    _encode_line(counts > 0, len(used), enc)
    encode_uints(counts[used] - 1, lines.shape[1] - 1, enc)
    for i in used.tolist():
        _encode_line(lines[i], int(counts[i]), enc)


def decode_positions(shape: tuple[int, int], axis: int, dec: Decoder) -> np.ndarray:
    """The 2-D bool mask back from the positions stream."""
    n_lines, length = shape if axis == 0 else shape[::-1]
    n_used = int(decode_uints(1, n_lines, dec)[0])
    used = np.flatnonzero(_decode_line(n_used, n_lines, dec))
    counts = decode_uints(n_used, length - 1, dec) + 1
    lines = np.zeros((n_lines, length), dtype=bool)
    for i, count in zip(used.tolist(), counts.tolist(), strict=True):
        lines[i] = _decode_line(count, length, dec)
    return lines if axis == 0 else lines.T


def _histogram_model(hist: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(hist / hist.sum(), perfect=False)


def encode_symbols(symbols: np.ndarray, alphabet: int, enc: Encoder) -> None:
    """Range-code codebook indices with their own histogram, the histogram first: each entry in [0, what the
    entries before it left of len(symbols)], the last one implied (the decoder knows the count from the mask)."""
    hist = np.bincount(symbols, minlength=alphabet)
    left = len(symbols)
    for h in hist[:-1].tolist():
        encode_uints(np.array([h]), left, enc)
        left -= h
    if len(symbols):
        enc.encode(symbols.astype(np.int32), _histogram_model(hist))


def decode_symbols(count: int, alphabet: int, dec: Decoder) -> np.ndarray:
    hist, left = np.zeros(alphabet, dtype=np.int64), count
    for i in range(alphabet - 1):
        hist[i] = decode_uints(1, left, dec)[0]
        left -= int(hist[i])
    hist[-1] = left
    if left < 0:
        raise ValueError("a value histogram holds more values than its layer's mask")
    return dec.decode(_histogram_model(hist), count).astype(np.int64) if count else np.zeros(0, np.int64)


def kmeans_1d(values: np.ndarray, k: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars: (k sorted float32 centroids, each value's index).

    Started at the values' k quantiles. Han et al. (2016) start evenly over [min, max] and then retrain the
    shared values; without retraining (as here) that start cost the 95% model 0.18 pt at 4 bits (99.23%),
    almost all of it in the 233-weight first conv, and the quantile start none (99.44% vs 99.41% unquantized).
    """
    v = values.astype(np.float64)
    distinct = np.unique(v)
    if 0 < len(distinct) <= k:
        # Already k values or fewer (a decoded file whose shared values were trained: codebook.py): those values
        # exactly, the last repeated where fewer. Lloyd's from the quantiles could merge two of them.
        centroids = np.concatenate([distinct, np.full(k - len(distinct), distinct[-1])]).astype(np.float32)
        return centroids, np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values.astype(np.float32))
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
