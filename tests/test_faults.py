"""Faults: unwritable or full disks leave nothing partial; no unrestricted deserialization anywhere."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bignn import data, io
from bignn.model import build_model

ROOT = Path(__file__).resolve().parents[1]


def test_disk_full_leaves_old_output_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "models" / "dense.pth"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*dense.pth: No space left on device"):
        io.save_checkpoint(target, build_model(conv_channels=[2], hidden=[4]))
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["dense.pth"]


def test_output_folder_that_is_a_file_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write .*models/x.json"):
        io.write_json(tmp_path / "models" / "x.json", {"a": 1})


def test_every_torch_load_is_weights_only() -> None:
    sources = [p for d in ("bignn", "stages", "commands", "notebooks") for p in (ROOT / d).rglob("*")
               if p.suffix in (".py", ".ipynb")]
    calls = [(p, m) for p in sources for m in re.finditer(r"torch\.load\(([^)]*)\)", p.read_text())]
    assert calls, "expected at least one torch.load in the library"
    for path, match in calls:
        assert "weights_only=True" in match.group(1), f"{path}: {match.group(0)}"


def test_no_plain_pickle_load_anywhere() -> None:
    for path in [p for d in ("bignn", "stages", "commands") for p in (ROOT / d).rglob("*.py")]:
        text = path.read_text()
        assert not re.search(r"pickle\.loads?\(", text), f"{path} unpickles without a restricted Unpickler"


KILLED_WRITER = """
import os, sys, time
from bignn import data, io
io.os.fsync = lambda fd: time.sleep(60)  # a slow disk: the kill lands between write and rename
io.atomic_write_bytes(sys.argv[1], b"new bytes" * 100_000)
"""


def test_writer_killed_mid_write_leaves_old_output_and_rerun_recovers(tmp_path: Path) -> None:
    target = tmp_path / "metrics" / "dense.json"
    target.parent.mkdir()
    target.write_bytes(b"old")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(".dense.json.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never started its temp file"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old"  # nothing partial where readers look
    io.write_json(target, {"ok": True})  # the rerun
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in target.parent.iterdir()] == ["dense.json"], "stale temp files are cleared"


def test_truncated_or_corrupted_data_is_refused_by_name(synthetic_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(synthetic_root / "MNIST" / "raw", raw)
    monkeypatch.setattr(data, "RAW_FILES", {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in raw.iterdir()})
    assert len(data.load_split(tmp_path, train=False)) == 500  # intact: loads
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-784])  # one image short
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte is truncated or corrupted"):
        data.load_split(tmp_path, train=False)
    labels = raw / "train-labels-idx1-ubyte"
    flipped = bytearray(labels.read_bytes())
    flipped[100] ^= 1
    labels.write_bytes(bytes(flipped))
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte is truncated or corrupted"):
        data.load_split(tmp_path, train=True)


def test_unverified_idx_files_are_still_checked_for_shape(synthetic_root: Path, tmp_path: Path) -> None:
    """verify: false (synthetic digits) skips the MD5s; a short or foreign file still fails by name."""
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(synthetic_root / "MNIST" / "raw", raw)
    assert len(data.load_split(tmp_path, train=False, verify=False)) == 500
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte holds .* its header says"):
        data.load_split(tmp_path, train=False, verify=False)
    images.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte is not a uint8 IDX file"):
        data.load_split(tmp_path, train=False, verify=False)
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8 + 1999].replace(b"\x00\x00\x07\xd0", b"\x00\x00\x07\xcf", 1))
    with pytest.raises(data.DataError, match="do not match"):
        data.load_split(tmp_path, train=True, verify=False)
