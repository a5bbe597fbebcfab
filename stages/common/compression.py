"""A compact file for a pruned model: only the nonzero weights, quantized, then lzma.

Deep Compression (Han et al. 2016) in its simplest form, minus the Huffman stage that lzma stands in for:
- each conv / linear weight keeps its nonzero entries only: their positions as gaps between neighbours
  (varints: at 95% sparsity most gaps fit one byte) and their values as signed integers of `bits` bits
  with one float32 scale per output channel;
- every other tensor (biases, batch-norm statistics) is stored as it is;
- positions, values, scales and the rest go into separate streams, so lzma models each one's own statistics.

The file holds no pickle: a JSON header says how to rebuild each tensor, so loading never runs code.
"""

from __future__ import annotations

import json
import lzma
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import CheckpointError, load_checkpoint
from .model import BigCNN, build_model, prunable

MAGIC = b"BIGNN-SPARSE-1\n"
STREAMS = ("positions", "values", "scales", "dense")
_DTYPES = {"torch.float32": np.float32, "torch.int64": np.int64}


def _le(dtype: str) -> np.dtype:
    """Little-endian numpy dtype for a torch dtype name, so the file reads the same on any machine."""
    return np.dtype(_DTYPES[dtype]).newbyteorder("<")


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


def encode(model: BigCNN, bits: int) -> bytes:
    sparse = {f"{name}.weight" for name, _ in prunable(model)}
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
            if entry["dtype"] not in _DTYPES:
                raise ValueError(f"cannot store {name}: dtype {tensor.dtype} is not one of {list(_DTYPES)}")
            streams["dense"] += np.ascontiguousarray(tensor.detach().numpy(), dtype=_le(entry["dtype"])).tobytes()
            entry["kind"] = "dense"
        entries.append(entry)
    header = json.dumps({"model_args": model.model_args, "bits": bits, "tensors": entries}).encode()
    body = struct.pack("<I", len(header)) + header
    for s in STREAMS:
        body += struct.pack("<Q", len(streams[s])) + bytes(streams[s])
    return MAGIC + lzma.compress(body, preset=9 | lzma.PRESET_EXTREME)


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


def load_compressed(path: str | Path) -> BigCNN:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such compressed model (run `dvc repro compress` first)")
    try:
        return decode(path.read_bytes())
    except (ValueError, KeyError, IndexError, struct.error, lzma.LZMAError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable compressed model: {str(exc).splitlines()[0]}") from None


def load_model(path: str | Path) -> BigCNN:
    """Any model file the pipeline writes: a .pth checkpoint or a compressed .bin."""
    return load_compressed(path) if Path(path).suffix == ".bin" else load_checkpoint(path)[0]
