"""Atomic file writes and checkpoints.

Every output is written to a temp file in the same folder and renamed into place, so a killed stage or a
full disk never leaves a half-written file where the next stage (or DVC) would read it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from bignn.model import BigCNN, build_model


def _umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


class CheckpointError(ValueError):
    """A file that is not a checkpoint this pipeline wrote, or one that does not fit its model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A writer killed before its rename (SIGKILL cannot be caught) leaves its temp file: clear those.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(str(r[k]) for k in keys) for r in rows]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def save_checkpoint(path: str | Path, model: BigCNN, **extra: Any) -> None:
    # torch.save stores the archive's file name inside it; saving to an in-memory buffer keeps the
    # bytes independent of the temp file's random name, so equal weights give equal dvc.lock hashes.
    buf = io.BytesIO()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"model_args": model.model_args, "state_dict": state, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's dict (tensors only: weights_only=True); refuse anything else with a readable message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (run the stage that writes it first)")
    try:
        with warnings.catch_warnings():
            # int8 tensors come back through torch's own TypedStorage, which warns that it is deprecated.
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint: {str(exc).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or not {"model_args", "state_dict"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a checkpoint of this pipeline: it needs keys "
                              "'model_args' and 'state_dict'")
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[BigCNN, dict[str, Any]]:
    """Rebuild the float model a checkpoint describes; refuse anything else with a readable message."""
    ckpt = read_checkpoint(path)
    return float_model(ckpt, path), ckpt


def float_model(ckpt: dict[str, Any], path: str | Path) -> BigCNN:
    """The float model of a checkpoint read from `path` (named in errors)."""
    if "format" in ckpt:
        raise CheckpointError(f"{path} holds a {ckpt['format']} model, not a float checkpoint")
    try:
        model = build_model(**ckpt["model_args"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has model_args this pipeline cannot build: {exc}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise CheckpointError(f"{path}: weights do not fit the model in model_args: {' '.join(first)}") from None
    return model
