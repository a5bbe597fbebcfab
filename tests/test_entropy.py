"""Range coding of sparse layers: exact round trips, costs near the entropy bound, k-means codebooks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bignn import entropy


def _mask(rows: int, cols: int, density: float, seed: int) -> np.ndarray:
    mask = np.random.default_rng(seed).random((rows, cols)) < density
    mask[0] = False  # an empty line
    mask[1] = True   # a full line
    return mask


@pytest.mark.parametrize("density", [0.005, 0.05, 0.3, 0.9])
@pytest.mark.parametrize("axis", [0, 1])
def test_positions_round_trip(density: float, axis: int) -> None:
    mask = _mask(40, 300, density, seed=int(density * 1000))
    enc = entropy.Encoder()
    entropy.encode_positions(mask, axis, enc)
    enc.encode(np.int32(7), entropy._Uniform(9))  # what follows in the stream stays in step
    dec = entropy.Decoder(enc.get_compressed())
    assert np.array_equal(entropy.decode_positions(mask.shape, axis, dec), mask)
    assert dec.decode(entropy._Uniform(9)) == 7


@pytest.mark.parametrize("bound", [1, 255, 65535, 65536, 3_000_000])
def test_bounded_integers_round_trip_at_their_cost(bound: int) -> None:
    values = np.unique(np.array([0, 1, bound // 2, bound - 1, bound]).clip(0, bound))
    enc = entropy.Encoder()
    entropy.encode_uints(values, bound, enc)
    assert np.array_equal(entropy.decode_uints(len(values), bound, entropy.Decoder(enc.get_compressed())), values)
    assert enc.num_bits() <= len(values) * (math.log2(bound + 1) + 1) + 32


def test_positions_cost_about_the_entropy_of_each_line() -> None:
    """Given each line's count, no code can beat log2 C(length, count) bits a line on random positions; the
    counts cost log2(length) bits each."""
    rows = [np.random.default_rng(r).random(2000) < d for r, d in enumerate(np.geomspace(0.003, 0.3, 60))]
    mask = np.stack(rows)
    enc = entropy.Encoder()
    entropy.encode_positions(mask, 0, enc)
    bound = sum(math.log2(math.comb(2000, int(r.sum()))) for r in mask)
    assert bound < enc.num_bits() < 1.03 * bound + 60 * math.log2(2000) + 64


def test_empty_lines_cost_about_a_bit_and_the_axis_model_is_the_code() -> None:
    """A layer with 3/4 of its neurons pruned away: the empty rows cost about the entropy of which rows are
    used, not a count each; and what best_axis weighs for each axis is what the stream then pays."""
    rng = np.random.default_rng(3)
    mask = (rng.random((400, 300)) < 0.05) & (rng.random((400, 1)) < 0.25)
    for axis in (0, 1):
        enc = entropy.Encoder()
        entropy.encode_positions(mask, axis, enc)
        model = entropy._positions_bits(mask if axis == 0 else mask.T)
        # n H(count / n) a line is a little above log2 C(n, count), what the gaps' code nearly reaches.
        assert 0.96 * model < enc.num_bits() < model + 64, axis
    used = int(mask.any(1).sum())
    rows_only = entropy._positions_bits(mask) - entropy._line_bits(mask.sum(1), 300) - used * math.log2(300)
    assert rows_only < 400 * 0.9  # which of the 400 rows are used: under a bit each


def test_best_axis_follows_the_structure() -> None:
    mask = np.zeros((200, 300), dtype=bool)
    rng = np.random.default_rng(0)
    mask[:, :30] = rng.random((200, 30)) < 0.5  # a few live inputs (columns), all others dead
    assert entropy.best_axis(mask) == 1
    assert entropy.best_axis(mask.T) == 0


def test_symbols_round_trip_with_their_histogram() -> None:
    symbols = np.random.default_rng(1).choice(16, size=5000, p=np.arange(1, 17) / 136)
    enc = entropy.Encoder()
    entropy.encode_symbols(symbols, 16, enc)
    assert np.array_equal(entropy.decode_symbols(5000, 16, entropy.Decoder(enc.get_compressed())), symbols)
    p = np.bincount(symbols) / 5000
    # The histogram rides in the stream: 15 entries of at most log2(5001) bits.
    assert enc.num_bits() < 1.01 * 5000 * float(-(p * np.log2(p)).sum()) + 15 * math.log2(5001) + 64


def test_kmeans_assigns_every_value_its_nearest_centroid() -> None:
    values = np.random.default_rng(2).laplace(size=4000).astype(np.float32)
    values = values[np.abs(values) > 0.3]  # a pruned layer's values: nothing near zero
    errors = []
    for k in (4, 16):
        centroids, idx = entropy.kmeans_1d(values, k)
        assert len(centroids) == k and np.all(np.diff(centroids) >= 0)
        nearest = np.abs(values[:, None] - centroids[None]).min(1)
        assert np.allclose(np.abs(values - centroids[idx]), nearest)
        errors.append(float(((values - centroids[idx]) ** 2).mean()))
    assert errors[1] < errors[0] / 4


def test_a_gap_the_model_calls_all_but_impossible_still_round_trips() -> None:
    """1,500 nonzeros packed at the end of a 3,136 line: a first gap of 1,636 at density 0.48, whose
    geometric probability underflows float64. The coder still gives it a nonzero share."""
    mask = np.zeros((2, 3136), dtype=bool)
    mask[0, -1500:] = True
    mask[1, [0, 1, 2, 3, 4, 3133, 3134, 3135]] = True
    enc = entropy.Encoder()
    entropy.encode_positions(mask, 0, enc)
    assert np.array_equal(entropy.decode_positions(mask.shape, 0, entropy.Decoder(enc.get_compressed())), mask)
