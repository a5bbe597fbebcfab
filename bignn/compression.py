"""Compact files for a pruned model: only the nonzero weights, quantized, then entropy-coded.

Deep Compression (Han et al. 2016) in two forms, both told apart by their first bytes:
- lzma (BIGNN-SPARSE-1): positions as gaps between neighbours (LEB128 varints: at 95% sparsity most gaps fit
  one byte), values as signed integers of `bits` bits with one float32 scale per output channel; positions,
  values, scales and the rest in separate streams, so lzma models each one's own statistics;
- range (BIGNN-SPARSE-5): positions coded line by line with each line's own density, values as indices
  into a per-layer codebook (k-means or the uniform grid), both range-coded with everything they need
  (which lines are used, line counts, index histograms) inside the streams (see entropy.py); a binary
  header of a few varints; each batch norm's per-channel scale multiplied into the conv weights before it
  (BN(conv_W(x)) = conv_{scale W}(x) + shift), so only its shift is stored; shifts, biases and codebooks in
  float16. No container, no lengths but the two streams': a 2 KB model's file is 22% smaller than in
  SPARSE-4, which kept counts, histograms and a JSON header in an lzma container and each scale apart.
  (SPARSE-3 built its gap models from numpy's power, which differs in the last bit on CPUs with AVX-512: see
  entropy.py.) Files of earlier range formats are refused with what to run.
In the lzma form every other tensor (biases, batch-norm statistics) is stored exactly, as float32.

Neither file holds a pickle: a header (JSON in the lzma form) says how to rebuild each tensor, so loading
never runs code.
"""

from __future__ import annotations

import json
import lzma
import struct
from itertools import pairwise
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


def varint(n: int) -> bytes:
    """LEB128: 7 bits a byte, low first."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_gaps(positions: np.ndarray) -> bytes:
    """Sorted flat indices -> LEB128 varints of the gap before each one (0 = right after the previous)."""
    return b"".join(varint(g) for g in (np.diff(positions, prepend=-1) - 1).tolist())


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


RANGE_MAGIC = b"BIGNN-SPARSE-5\n"
QUANTIZERS = ("uniform", "kmeans")
_F16, _F32 = np.dtype("<f2"), np.dtype("<f4")
# The range format after its magic: the header (below), the positions stream, the values stream (both
# range-coded, see entropy.py), the tables (each layer's codebook or row scales, float16 unless the header
# says float32), the dense tensors (float16). Every length but the two streams' follows from the header.
RANGE_PARTS = ("header", "positions", "values", "tables", "dense")


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


def _table_shape(rows: int, bits: int, quantizer: str) -> tuple[int, int]:
    """(table entries, alphabet) of a layer: what _codebook gives, from what the decoder knows."""
    return (rows, 2 ** bits - 1) if quantizer == "uniform" else (2 ** bits, 2 ** bits)


def _batch_norms(model: torch.nn.Module) -> dict[str, float]:
    """Each batch norm's state-dict prefix and its eps."""
    return {name: m.eps for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def _norm_after(model: torch.nn.Module) -> dict[str, str]:
    """Each conv whose output goes straight into a batch norm (the next module of the same Sequential) -> that
    batch norm: BN(conv_W(x)) = conv_{scale * W}(x) + shift, so the range format stores the conv's weights
    times the batch norm's per-channel scale and the batch norm as its shift alone."""
    pairs = {}
    for prefix, seq in model.named_modules():
        if isinstance(seq, torch.nn.Sequential):
            kids = list(seq.named_children())
            for (a, conv), (b, norm) in pairwise(kids):
                if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                    pairs[f"{prefix}.{a}".lstrip(".")] = f"{prefix}.{b}".lstrip(".")
    return pairs


def _norm_scale(state: dict[str, torch.Tensor], prefix: str, eps: float) -> np.ndarray:
    """weight / sqrt(var + eps), in float64: what the batch norm multiplies each channel by at inference."""
    return state[f"{prefix}.weight"].double().numpy() / np.sqrt(state[f"{prefix}.running_var"].double().numpy() + eps)


def _coded_weight(model: BigCNN, name: str, module: torch.nn.Module) -> torch.Tensor:
    """The weight the range format codes for this layer: scaled by the batch norm after it, if one is."""
    norm = _norm_after(model).get(name)
    if norm is None:
        return module.weight
    scale = _norm_scale(model.state_dict(), norm, _batch_norms(model)[norm])
    w = module.weight.detach().double().numpy() * scale.reshape(-1, *[1] * (module.weight.dim() - 1))
    return torch.from_numpy(w.astype(np.float32))


def _dense_tensors(model: BigCNN) -> list[np.ndarray]:
    """The dense part as stored, in state-dict order, every float in float16: each batch norm as the shift
    bias - mean * scale that inference applies, and its scale weight / sqrt(var + eps) too unless the conv
    before it carries the scale (_norm_after); its running statistics and step counter are not stored.
    Biases and batch norms are under 1% of a small model's parameters but were nearly a third of its file in
    float32; float16 rounding moved test accuracy by at most five images either way on the files measured
    (docs/history.md)."""
    sparse, folded = _sparse_names(model), set(_norm_after(model).values())
    norms, state = _batch_norms(model), model.state_dict()
    out = []
    for name, t in state.items():
        prefix, _, leaf = name.rpartition(".")
        if name in sparse or (prefix in norms and leaf not in ("weight", "bias")) or (
                prefix in folded and leaf == "weight"):
            continue
        x = t.detach().double().numpy()
        if prefix in norms:
            scale = _norm_scale(state, prefix, norms[prefix])
            x = scale if leaf == "weight" else x - state[f"{prefix}.running_mean"].double().numpy() * scale
        out.append(x.astype(_F16))
    return out


def _restore_dense(model: BigCNN, state: dict[str, torch.Tensor], dense: bytes) -> None:
    """Inverse of _dense_tensors into `state` (the model's own fresh state dict): a batch norm gets mean 0 and
    variance 1 - eps, so it applies exactly the stored scale (1 where the conv carries it) and shift."""
    sparse, folded = _sparse_names(model), set(_norm_after(model).values())
    norms, at = _batch_norms(model), 0
    for name, t in state.items():
        prefix, _, leaf = name.rpartition(".")
        if name in sparse:
            continue
        if prefix in norms and leaf == "running_mean":
            t.zero_()
        elif prefix in norms and leaf == "running_var":
            t.fill_(1.0 - norms[prefix])
        elif prefix in folded and leaf == "weight":
            t.fill_(1.0)
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


class _Reader:
    """Reads a range-coded file front to back; running off its end names the part it was in."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = memoryview(data), 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError(f"the file ends inside its {what}")
        self.at += n
        return bytes(self.data[self.at - n:self.at])

    def varint(self, what: str) -> int:
        n, shift = 0, 0
        while True:
            byte = self.take(1, what)[0]
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                return n
            shift += 7


def _header(model: BigCNN, bits: int, quantizer: str, axes: list[int], table_dtype: np.dtype,
            words: tuple[int, int]) -> bytes:
    """Varints: conv widths and hidden widths (each list after its length), classes, bits, flags (1: k-means,
    2: float32 tables), each layer's coding axis as one bit of a mask, the two streams' lengths in 32-bit
    words; then the dropout rate as a float64. That is all the decoder cannot know: it builds the model
    from it and reads every other length off the model's shapes."""
    args = model.model_args
    ints = [len(args["conv_channels"]), *args["conv_channels"], len(args["hidden"]), *args["hidden"],
            args["num_classes"], bits, (quantizer == "kmeans") | (table_dtype == _F32) << 1,
            sum(a << i for i, a in enumerate(axes)), *words]
    return b"".join(varint(int(n)) for n in ints) + struct.pack("<d", args["dropout"])


def _read_header(r: _Reader) -> dict[str, Any]:
    conv = [r.varint("header") for _ in range(r.varint("header"))]
    hidden = [r.varint("header") for _ in range(r.varint("header"))]
    classes, bits, flags, axes, pos_words, val_words = (r.varint("header") for _ in range(6))
    (dropout,) = struct.unpack("<d", r.take(8, "header"))
    if not 1 <= bits <= 16 or flags > 3:
        raise ValueError(f"its header is not one this version writes (bits {bits}, flags {flags})")
    return {"model_args": {"conv_channels": conv, "hidden": hidden, "dropout": dropout, "num_classes": classes},
            "bits": bits, "quantizer": QUANTIZERS[flags & 1], "tables": "f4" if flags & 2 else "f2",
            "axes": axes, "words": (pos_words, val_words)}


def range_parts(model: BigCNN, bits: int, quantizer: str) -> dict[str, bytes]:
    """The range-coded file's parts, in file order (RANGE_PARTS)."""
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {list(QUANTIZERS)}, got {quantizer!r}")
    enc_pos, enc_val = Encoder(), Encoder()
    axes, tables = [], []
    for name, module in prunable(model):
        mask, index, table, alphabet = _codebook(_coded_weight(model, name, module), bits, quantizer)
        axis = best_axis(mask)
        encode_positions(mask, axis, enc_pos)
        encode_symbols(index[mask] if axis == 0 else index.T[mask.T], alphabet, enc_val)  # in coded order
        axes.append(axis)
        tables.append(table)
    table_dtype = _F16 if all(_float16_keeps(t, quantizer) for t in tables) else _F32
    positions = enc_pos.get_compressed().astype("<u4").tobytes()
    values = enc_val.get_compressed().astype("<u4").tobytes()
    header = _header(model, bits, quantizer, axes, table_dtype, (len(positions) // 4, len(values) // 4))
    return {"header": header, "positions": positions, "values": values,
            "tables": b"".join(t.astype(table_dtype).tobytes() for t in tables),
            "dense": b"".join(t.tobytes() for t in _dense_tensors(model))}


def encode_range(model: BigCNN, bits: int, quantizer: str) -> tuple[bytes, dict[str, int]]:
    """The range-coded file and its size in bytes by part: positions, values (with the codebooks or row
    scales), other (magic, header, dense tensors)."""
    parts = range_parts(model, bits, quantizer)
    data = RANGE_MAGIC + b"".join(parts[s] for s in RANGE_PARTS)
    sizes = {"positions": len(parts["positions"]), "values": len(parts["values"]) + len(parts["tables"])}
    return data, {**sizes, "other": len(data) - sum(sizes.values())}


def _table_dtype(header: dict[str, Any]) -> np.dtype:
    return _F32 if header["tables"] == "f4" else _F16


def _read_range(data: bytes) -> tuple[dict[str, Any], dict[str, bytes], BigCNN]:
    """The header (read), every part's bytes (RANGE_PARTS) and the fresh model the header builds."""
    if not data.startswith(RANGE_MAGIC):
        raise ValueError("not a range-coded model of this version (BIGNN-SPARSE-5)")
    r = _Reader(data)
    r.take(len(RANGE_MAGIC), "magic")
    header = _read_header(r)
    parts = {"header": bytes(r.data[len(RANGE_MAGIC):r.at])}
    parts["positions"] = r.take(4 * header["words"][0], "positions")
    parts["values"] = r.take(4 * header["words"][1], "values")
    model = build_model(**header["model_args"])
    entries = sum(_table_shape(m.weight.shape[0], header["bits"], header["quantizer"])[0] for _, m in prunable(model))
    parts["tables"] = r.take(_table_dtype(header).itemsize * entries, "tables")
    parts["dense"] = bytes(r.data[r.at:])  # _restore_dense checks its length against the model
    return header, parts, model


def read_range_parts(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header (read) and every part's bytes (RANGE_PARTS) of a range-coded file."""
    return _read_range(data)[:2]


def decode_range(data: bytes) -> BigCNN:
    header, parts, model = _read_range(data)
    table_dtype = _table_dtype(header)
    dec_pos = Decoder(np.frombuffer(parts["positions"], "<u4").astype(np.uint32))
    dec_val = Decoder(np.frombuffer(parts["values"], "<u4").astype(np.uint32))
    bits, uniform = header["bits"], header["quantizer"] == "uniform"
    state = model.state_dict()
    layers = prunable(model)
    if header["axes"] >> len(layers):
        raise ValueError(f"the header's axes name more layers than the model's {len(layers)}")
    table_at = 0
    for i, (name, module) in enumerate(layers):
        rows, cols = module.weight.shape[0], module.weight[0].numel()
        axis = header["axes"] >> i & 1
        mask = decode_positions((rows, cols), axis, dec_pos)
        table_len, alphabet = _table_shape(rows, bits, header["quantizer"])
        table = np.frombuffer(parts["tables"], table_dtype, table_len, table_at).astype(np.float32)
        table_at += table_dtype.itemsize * table_len
        symbols = decode_symbols(int(mask.sum()), alphabet, dec_val)
        where = np.nonzero(mask) if axis == 0 else np.nonzero(mask.T)[::-1]  # (rows, cols) in coded order
        w = np.zeros((rows, cols), dtype=np.float32)
        w[where] = (symbols - 2 ** (bits - 1) + 1) * table[where[0]] if uniform else table[symbols]
        state[f"{name}.weight"].copy_(torch.from_numpy(w).reshape(module.weight.shape))
    _restore_dense(model, state, parts["dense"])
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
