"""Compact files for a pruned model: only the nonzero weights, quantized, then entropy-coded.

Deep Compression (Han et al. 2016) in two forms, both told apart by their first bytes:
- lzma (BIGNN-SPARSE-1): positions as gaps between neighbours (LEB128 varints: at 95% sparsity most gaps fit
  one byte), values as signed integers of `bits` bits with one float32 scale per output channel; positions,
  values, scales and the rest in separate streams, so lzma models each one's own statistics;
- range (BIGNN-SPARSE-4): positions coded line by line with each line's own density, values as indices
  into a per-layer codebook (k-means or the uniform grid), both range-coded (see entropy.py); codebooks,
  biases and batch norms (folded into one scale and shift per channel) in float16, all the small parts in
  one lzma container. (BIGNN-SPARSE-3 was the same with gap models from numpy's power, which differs in the
  last bit on CPUs with AVX-512: see entropy.py. Its files are refused with what to run.)
In the lzma form every other tensor (biases, batch-norm statistics) is stored exactly, as float32.

Neither file holds a pickle: a JSON header says how to rebuild each tensor, so loading never runs code.
"""

from __future__ import annotations

import json
import lzma
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bignn.config import CompressConfig
from bignn.entropy import (
    Decoder,
    Encoder,
    best_axis,
    decode_positions,
    decode_symbols,
    encode_positions,
    encode_symbols,
    kmeans_1d,
    random_positions_bits,
)
from bignn.model import BigCNN, build_model, prunable

MAGIC = b"BIGNN-SPARSE-1\n"
STREAMS = ("positions", "values", "scales", "dense")
_DTYPES = {"torch.float32": np.float32, "torch.int64": np.int64}


def _le(dtype: str) -> np.dtype:
    """Little-endian numpy dtype for a torch dtype name, so the file reads the same on any machine."""
    return np.dtype(_DTYPES[dtype]).newbyteorder("<")


def _sparse_names(model: torch.nn.Module) -> set[str]:
    """State-dict names of the weights the formats code sparsely: every conv and linear weight."""
    return {f"{name}.weight" for name, _ in prunable(model)}


def quantize_rows(w: torch.Tensor, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel quantization: w ~ q * scale, q in [-(2^(bits-1) - 1), 2^(bits-1) - 1]."""
    qmax = 2 ** (bits - 1) - 1
    rows = w.detach().reshape(w.shape[0], -1).double()
    scale = rows.abs().amax(dim=1) / qmax
    scale[scale == 0] = 1.0  # an all-zero row quantizes to zeros whatever its scale
    q = torch.round(rows / scale[:, None]).clamp_(-qmax, qmax)
    return q.to(torch.int8).numpy(), scale.float().numpy()


def encode_gaps(positions: np.ndarray) -> bytes:
    """Sorted flat indices -> LEB128 varints of the gap before each one (0 = right after the previous)."""
    gaps = np.diff(positions, prepend=-1) - 1
    out = bytearray()
    for g in gaps.tolist():
        while g >= 0x80:
            out.append((g & 0x7F) | 0x80)
            g >>= 7
        out.append(g)
    return bytes(out)


def decode_gaps(data: memoryview, count: int, offset: int) -> tuple[np.ndarray, int]:
    """Inverse of encode_gaps for `count` positions starting at data[offset]; returns them and the new offset."""
    positions = np.empty(count, dtype=np.int64)
    pos, i = -1, offset
    for k in range(count):
        g, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            g |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        pos += g + 1
        positions[k] = pos
    return positions, i


def _lzma_streams(model: BigCNN, bits: int) -> tuple[bytes, dict[str, bytearray]]:
    """The lzma format's header and its four uncompressed streams."""
    sparse = _sparse_names(model)
    streams = {s: bytearray() for s in STREAMS}
    entries: list[dict[str, Any]] = []
    for name, tensor in model.state_dict().items():
        entry: dict[str, Any] = {"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}
        if name in sparse:
            q, scale = quantize_rows(tensor, bits)
            flat = q.reshape(-1)
            nz = np.flatnonzero(flat)
            streams["positions"] += encode_gaps(nz)
            streams["values"] += flat[nz].tobytes()
            streams["scales"] += scale.astype("<f4").tobytes()
            entry.update(kind="sparse", nnz=int(len(nz)))
        else:
            streams["dense"] += _dense_bytes(name, tensor)
            entry["kind"] = "dense"
        entries.append(entry)
    return json.dumps({"model_args": model.model_args, "bits": bits, "tensors": entries}).encode(), streams


def _dense_bytes(name: str, tensor: torch.Tensor) -> bytes:
    if str(tensor.dtype) not in _DTYPES:
        raise ValueError(f"cannot store {name}: dtype {tensor.dtype} is not one of {list(_DTYPES)}")
    return np.ascontiguousarray(tensor.detach().numpy(), dtype=_le(str(tensor.dtype))).tobytes()


def xz(data: bytes) -> bytes:
    return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)


def encode(model: BigCNN, bits: int) -> bytes:
    header, streams = _lzma_streams(model, bits)
    body = struct.pack("<I", len(header)) + header
    for s in STREAMS:
        body += struct.pack("<Q", len(streams[s])) + bytes(streams[s])
    return MAGIC + xz(body)


def lzma_parts(model: BigCNN, bits: int) -> dict[str, int]:
    """Bytes of positions / values / the rest in the lzma format, each stream compressed alone (the file
    compresses them together, so the parts add up to about, not exactly, its size)."""
    header, streams = _lzma_streams(model, bits)
    return {"positions": len(xz(streams["positions"])),
            "values": len(xz(streams["values"] + streams["scales"])),
            "other": len(MAGIC) + len(xz(header + streams["dense"]))}


def _split_streams(body: bytes) -> tuple[dict[str, Any], dict[str, memoryview]]:
    view = memoryview(body)
    (n,) = struct.unpack_from("<I", view, 0)
    header = json.loads(bytes(view[4:4 + n]))
    i, streams = 4 + n, {}
    for s in STREAMS:
        (size,) = struct.unpack_from("<Q", view, i)
        streams[s] = view[i + 8:i + 8 + size]
        i += 8 + size
    return header, streams


def decode(data: bytes) -> BigCNN:
    """Rebuild an ordinary fp32 BigCNN (quantized weights dequantized, pruned ones zero)."""
    if not data.startswith(MAGIC):
        raise ValueError("not a compressed model of this pipeline (bad magic bytes)")
    header, streams = _split_streams(lzma.decompress(data[len(MAGIC):]))
    model = build_model(**header["model_args"])
    state: dict[str, torch.Tensor] = {}
    pos_at = val_at = scale_at = dense_at = 0
    for e in header["tensors"]:
        shape, numel = e["shape"], int(np.prod(e["shape"], dtype=np.int64))
        if e["kind"] == "sparse":
            nnz, rows = e["nnz"], shape[0]
            positions, pos_at = decode_gaps(streams["positions"], nnz, pos_at)
            values = np.frombuffer(streams["values"], np.int8, nnz, val_at)
            scales = np.frombuffer(streams["scales"], "<f4", rows, scale_at)
            val_at, scale_at = val_at + nnz, scale_at + 4 * rows
            w = np.zeros(numel, dtype=np.float32)
            # Row of flat index p is p // (numel / rows): each value times its own channel's scale.
            w[positions] = values * scales[positions // (numel // rows)]
            state[e["name"]] = torch.from_numpy(w.reshape(shape))
        else:
            dtype = _le(e["dtype"])
            arr = np.frombuffer(streams["dense"], dtype, numel, dense_at)
            dense_at += numel * dtype.itemsize
            state[e["name"]] = torch.from_numpy(arr.astype(dtype.newbyteorder("=")).reshape(shape))
    model.load_state_dict(state)
    return model


RANGE_MAGIC = b"BIGNN-SPARSE-4\n"
# One lzma container holds the small parts: header (JSON), counts (nonzeros per line), tables (codebooks or
# scales, index histograms), dense (every other tensor); then the two range-coded streams: positions (gaps)
# and values (codebook indices).
SMALL_PARTS = ("header", "counts", "tables", "dense")
RANGE_STREAMS = ("small", "positions", "values")
QUANTIZERS = ("uniform", "kmeans")
_F16 = np.dtype("<f2")


def _codebook(tensor: torch.Tensor, bits: int, quantizer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(2-D mask of the weights kept, each kept weight's index in the layer's order, table, alphabet).

    uniform: symmetric per-row grid (table = one scale per row; index = q + qmax); weights that round to 0
    are dropped. kmeans: 2^bits shared values per layer (table = the centroids).
    """
    if quantizer == "uniform":
        q, scale = quantize_rows(tensor, bits)
        qmax = 2 ** (bits - 1) - 1
        return q != 0, q.astype(np.int64) + qmax, scale, 2 * qmax + 1
    w = tensor.detach().reshape(tensor.shape[0], -1).numpy()
    mask = w != 0
    centroids, idx = kmeans_1d(w[mask], 2 ** bits)
    index = np.zeros(w.shape, dtype=np.int64)
    index[mask] = idx
    return mask, index, centroids, 2 ** bits


def _batch_norms(model: torch.nn.Module) -> dict[str, float]:
    """Each batch norm's state-dict prefix and its eps."""
    return {name: m.eps for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def _dense_tensors(model: BigCNN) -> list[np.ndarray]:
    """The dense part as stored, in state-dict order: each batch norm folded into the scale
    weight / sqrt(var + eps) and the shift bias - mean * scale that inference applies (its running statistics
    and step counter are not stored), every float in float16. Biases and batch norms are under 1% of a small
    model's parameters but were nearly a third of its file in float32; float16 rounding moved test accuracy by
    at most five images either way on the files measured (docs/history.md)."""
    sparse = _sparse_names(model)
    norms, state = _batch_norms(model), model.state_dict()
    out = []
    for name, t in state.items():
        prefix, _, leaf = name.rpartition(".")
        if name in sparse or (prefix in norms and leaf not in ("weight", "bias")):
            continue
        x = t.detach().double().numpy()
        if prefix in norms:
            scale = state[f"{prefix}.weight"].double().numpy() / np.sqrt(
                state[f"{prefix}.running_var"].double().numpy() + norms[prefix])
            x = scale if leaf == "weight" else x - state[f"{prefix}.running_mean"].double().numpy() * scale
        out.append(x.astype(_F16))
    return out


def _restore_dense(model: BigCNN, state: dict[str, torch.Tensor], dense: bytes) -> None:
    """Inverse of _dense_tensors into `state` (the model's own fresh state dict): a folded batch norm gets
    mean 0 and variance 1 - eps, so it applies exactly the stored scale and shift."""
    sparse = _sparse_names(model)
    norms, at = _batch_norms(model), 0
    for name, t in state.items():
        prefix, _, leaf = name.rpartition(".")
        if name in sparse:
            continue
        if prefix in norms and leaf == "running_mean":
            t.zero_()
        elif prefix in norms and leaf == "running_var":
            t.fill_(1.0 - norms[prefix])
        elif not (prefix in norms and leaf == "num_batches_tracked"):
            arr = np.frombuffer(dense, _F16, t.numel(), at)
            at += arr.nbytes
            t.copy_(torch.from_numpy(arr.astype(np.float32)).reshape(t.shape))
    if at != len(dense):
        raise ValueError(f"the dense part holds {len(dense)} bytes, the model reads {at}")


def _float16_keeps(table: np.ndarray, quantizer: str) -> bool:
    """Whether float16 stores this codebook or these row scales to 2^-11 of what matters: each row scale to
    its own size (so none may fall below float16's normal range, 2^-14), a codebook to its largest entry
    (below 2^-14 float16 keeps an absolute 2^-25, small beside a largest entry of 2^-14 or more). Otherwise
    the file's tables are float32."""
    mags = np.abs(table[table != 0])
    if mags.size == 0:
        return True
    return (mags.min() if quantizer == "uniform" else mags.max()) >= 2.0 ** -14 and mags.max() < 65504


def pack(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def unpack(data: bytes | memoryview, names: Sequence[str], what: str) -> dict[str, bytes]:
    view, i, out = memoryview(data), 0, {}
    for s in names:
        (size,) = struct.unpack_from("<Q", view, i)
        if i + 8 + size > len(view):
            raise ValueError(f"the {what} ends inside its {s} part")
        out[s] = bytes(view[i + 8:i + 8 + size])
        i += 8 + size
    return out


def range_parts(model: BigCNN, bits: int, quantizer: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The file's small parts (uncompressed) and its two range-coded streams."""
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {list(QUANTIZERS)}, got {quantizer!r}")
    enc_pos, enc_val = Encoder(), Encoder()
    raw = {s: bytearray() for s in ("counts", "tables")}
    layers: list[list[int]] = []
    tables: list[tuple[np.ndarray, np.ndarray]] = []
    for _, module in prunable(model):
        mask, index, table, alphabet = _codebook(module.weight, bits, quantizer)
        axis = best_axis(mask)
        raw["counts"] += encode_positions(mask, axis, enc_pos).astype("<u4").tobytes()
        symbols = index[mask] if axis == 0 else index.T[mask.T]  # in the order the lines are coded
        hist = encode_symbols(symbols, alphabet, enc_val)
        tables.append((table, hist))
        layers.append([axis, len(table), alphabet])
    table_dtype = _F16 if all(_float16_keeps(t, quantizer) for t, _ in tables) else np.dtype("<f4")
    for table, hist in tables:
        raw["tables"] += table.astype(table_dtype).tobytes() + hist.astype("<u4").tobytes()
    # Names and shapes come from model_args (the decoder builds the model first): only what it cannot know.
    meta = {"model_args": model.model_args, "bits": bits, "quantizer": quantizer, "layers": layers,
            **({} if table_dtype == _F16 else {"tables": "f4"})}
    header = json.dumps(meta, separators=(",", ":")).encode()
    small = {"header": header, "counts": bytes(raw["counts"]), "tables": bytes(raw["tables"]),
             "dense": b"".join(t.tobytes() for t in _dense_tensors(model))}
    coded = {"positions": enc_pos.get_compressed().astype("<u4").tobytes(),
             "values": enc_val.get_compressed().astype("<u4").tobytes()}
    return small, coded


def encode_range(model: BigCNN, bits: int, quantizer: str) -> tuple[bytes, dict[str, int]]:
    """The range-coded file and its size in bytes by part: positions (with the line counts), values (with the
    codebooks and histograms), other (magic, lengths, header, dense tensors). The small parts share one lzma
    container; each is attributed what it weighs compressed alone, and other is the rest of the file."""
    small, coded = range_parts(model, bits, quantizer)
    data = RANGE_MAGIC + pack([xz(pack([small[s] for s in SMALL_PARTS])), coded["positions"], coded["values"]])
    parts = {"positions": len(coded["positions"]) + len(xz(small["counts"])),
             "values": len(coded["values"]) + len(xz(small["tables"]))}
    return data, {**parts, "other": len(data) - sum(parts.values())}


def read_range_parts(data: bytes) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The small parts (decompressed) and the range-coded streams of a range-coded file."""
    if not data.startswith(RANGE_MAGIC):
        raise ValueError("not a range-coded model of this version (BIGNN-SPARSE-4)")
    streams = unpack(memoryview(data)[len(RANGE_MAGIC):], RANGE_STREAMS, "file")
    small = unpack(lzma.decompress(streams["small"]), SMALL_PARTS, "lzma container")
    return small, {s: streams[s] for s in ("positions", "values")}


def decode_range(data: bytes) -> BigCNN:
    small, coded = read_range_parts(data)
    header = json.loads(small["header"])
    counts = np.frombuffer(small["counts"], "<u4").astype(np.int64)
    tables = small["tables"]
    table_dtype = np.dtype("<f4") if header.get("tables") == "f4" else _F16
    dec_pos = Decoder(np.frombuffer(coded["positions"], "<u4").astype(np.uint32))
    dec_val = Decoder(np.frombuffer(coded["values"], "<u4").astype(np.uint32))
    uniform = header["quantizer"] == "uniform"
    qmax = 2 ** (header["bits"] - 1) - 1
    model = build_model(**header["model_args"])
    state = model.state_dict()
    layers = prunable(model)
    if len(layers) != len(header["layers"]):
        raise ValueError(f"the header lists {len(header['layers'])} layers, the model has {len(layers)}")
    count_at = table_at = 0
    for (name, module), (axis, table_len, alphabet) in zip(layers, header["layers"], strict=True):
        rows, cols = module.weight.shape[0], module.weight[0].numel()
        lines = rows if axis == 0 else cols
        mask = decode_positions((rows, cols), axis, counts[count_at:count_at + lines], dec_pos)
        count_at += lines
        table = np.frombuffer(tables, table_dtype, table_len, table_at).astype(np.float32)
        hist = np.frombuffer(tables, "<u4", alphabet, table_at + table_dtype.itemsize * table_len).astype(np.uint32)
        table_at += table_dtype.itemsize * table_len + 4 * alphabet
        symbols = decode_symbols(hist, dec_val)
        where = np.nonzero(mask) if axis == 0 else np.nonzero(mask.T)[::-1]  # (rows, cols) in coded order
        w = np.zeros((rows, cols), dtype=np.float32)
        w[where] = (symbols - qmax) * table[where[0]] if uniform else table[symbols]
        state[f"{name}.weight"].copy_(torch.from_numpy(w).reshape(module.weight.shape))
    _restore_dense(model, state, small["dense"])
    model.load_state_dict(state)
    return model


def decode_file(data: bytes) -> BigCNN:
    """The model in a compressed file's bytes, whichever coder wrote it; ValueError (and lzma's, struct's
    errors) for anything else."""
    if data.startswith(RANGE_MAGIC):
        return decode_range(data)
    if data.startswith(b"BIGNN-SPARSE-") and not data.startswith(MAGIC):
        version = bytes(data[:32]).split(b"\n")[0].decode("ascii", "replace")
        raise ValueError(f"its format {version} is an earlier version's, which this one no longer reads: run "
                         "`dvc repro` to write it again")
    return decode(data)


DECODE_ERRORS = (ValueError, KeyError, IndexError, struct.error, lzma.LZMAError, RuntimeError)


def compress_model(cfg: CompressConfig, model: torch.nn.Module, dense_bytes: int,
                   source_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """The artifact's bytes and a size report: against the dense checkpoint and the model's own checkpoint
    (source_bytes), and in bits per nonzero weight split into positions, values (with codebooks and scales)
    and everything else. k-means sums floats: run it under the pinned kernels (runtime.setup), so the codebook
    does not depend on the CPU either."""
    if cfg.coder == "range":
        data, parts = encode_range(model, cfg.bits, cfg.quantizer)
        decode_range(data)  # a file that cannot be read back is never written
    else:
        data, parts = encode(model, cfg.bits), lzma_parts(model, cfg.bits)
        decode(data)
    masks = [(m.weight != 0).numpy() for _, m in prunable(model)]
    nonzero = sum(int(mask.sum()) for mask in masks)
    random_bits = sum(random_positions_bits(mask) for mask in masks)
    report = {"bits": cfg.bits, "quantizer": cfg.quantizer, "coder": cfg.coder, "bytes": len(data),
              "dense_checkpoint_bytes": dense_bytes, "pruned_checkpoint_bytes": source_bytes,
              "times_smaller_than_dense": dense_bytes / len(data), "nonzero_weights": nonzero,
              "bits_per_nonzero": 8 * len(data) / nonzero,
              **{f"{k}_bits_per_nonzero": 8 * v / nonzero for k, v in parts.items()},
              # The entropy bound for the same counts at random positions in each layer (see entropy.py).
              "random_positions_bits_per_nonzero": random_bits / nonzero}
    return data, report


def summary(path: Path, report: dict[str, Any]) -> str:
    return (f"{path}: {report['bytes']:,} bytes, {report['times_smaller_than_dense']:.1f}x smaller than the "
            f"dense checkpoint ({report['dense_checkpoint_bytes']:,} bytes); {report['bits_per_nonzero']:.2f} "
            f"bits per nonzero weight (positions {report['positions_bits_per_nonzero']:.2f}, values "
            f"{report['values_bits_per_nonzero']:.2f}, other {report['other_bits_per_nonzero']:.2f})")
