"""A held-out split by writer: which training images to choose a recipe on so that it reads like the test set.

    python -m commands writers qmnist-train-labels.tsv.gz     # writes data/holdout-writers.tsv (committed)
    python -m commands seeds smallest --holdout-writers -S combine=kb4

MNIST's test digits come from writers none of whose digits are in the training set, half of them NIST's
high-school students (series hsf4, the harder half) and half its employees (hsf0 and hsf1). The last 5,000
training images (`--holdout 5000`) are neither: 69% of them are employees' digits, and a third of them come
from writers who also wrote some of the other 55,000. This split holds out every training image of 46 writers,
23 from each group, so that no held-out writer wrote a training image and each group gives about half.

Which writer wrote which MNIST training digit is not in MNIST's files; QMNIST's extended labels give it (Yadav
and Bottou, "Cold Case: The Lost MNIST Digits", 2019; github.com/facebookresearch/qmnist, BSD-3-Clause: their
training set matches MNIST's digit for digit and in order). `data/holdout-writers.tsv` is derived from that
file by this command and committed, so the split needs no download; `load` checks each row's label against
MNIST's own, so a file out of step with MNIST's order fails instead of splitting wrong.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Sequence
from pathlib import Path

import torch

from bignn.io import atomic_write_bytes
from bignn.runtime import cli

HOLDOUT_FILE = Path("data/holdout-writers.tsv")
STUDENTS = 4  # NIST's series hsf4: high-school students; hsf0 and hsf1 are Census employees
STRIDE = 11  # every 11th writer by id in each group: 23 writers give each group just over 2,500 images
PER_GROUP = 2500
HEADER = ("# MNIST training images held out by writer (python -m commands writers; see commands/writers.py).\n"
          "# Derived from QMNIST's extended training labels (github.com/facebookresearch/qmnist, BSD-3-Clause,\n"
          "# Copyright (c) Facebook, Inc. and its affiliates): every image of every 11th writer by id of each\n"
          "# group (students, series 4; employees, series 0 and 1), until the group has 2,500 images.\n"
          "# index\tlabel\tseries\twriter\n")

Row = tuple[int, int, int, int]  # training index, label, NIST series, NIST writer id


def parse_qmnist(lines: Sequence[str]) -> list[Row]:
    """QMNIST's tab-separated extended labels, one line per MNIST training image: (index, label, series,
    writer)."""
    rows = []
    for i, line in enumerate(lines):
        cols = line.split()
        if len(cols) != 8:
            raise ValueError(f"QMNIST labels line {i + 1}: expected 8 tab-separated columns, got {len(cols)}")
        rows.append((i, int(cols[0]), int(cols[1]), int(cols[2])))
    return rows


def choose(rows: Sequence[Row]) -> list[Row]:
    """Every image of the chosen writers, in training order: in each group, writers by id, every STRIDE-th from
    the first, until the group has PER_GROUP images or more."""
    by_writer: dict[int, list[Row]] = {}
    for row in rows:
        by_writer.setdefault(row[3], []).append(row)
    chosen: set[int] = set()
    for students in (True, False):
        group = sorted(w for w, rs in by_writer.items() if (rs[0][2] == STUDENTS) == students)
        count = 0
        for writer in group[::STRIDE]:
            if count >= PER_GROUP:
                break
            chosen.add(writer)
            count += len(by_writer[writer])
    return [row for row in rows if row[3] in chosen]


def render(rows: Sequence[Row]) -> str:
    return HEADER + "".join("\t".join(map(str, row)) + "\n" for row in rows)


def load(path: Path, labels: torch.Tensor) -> torch.Tensor:
    """The held-out training indices `path` lists, checked against MNIST's training `labels`."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the held-out writers' file ({e.strerror})") from None
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    if not rows or any(len(r) != 4 or not all(c.isdigit() for c in r) for r in rows):
        raise ValueError(f"{path}: expected lines of index, label, series, writer (tab-separated integers)")
    index = torch.tensor([int(r[0]) for r in rows])
    label = torch.tensor([int(r[1]) for r in rows])
    if int(index.max()) >= len(labels) or not torch.equal(labels[index], label):
        raise ValueError(f"{path}: its indices and labels are not MNIST's training set (another order, or "
                         f"a training set of {len(labels)} images)")
    return index


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path, help="QMNIST's qmnist-train-labels.tsv.gz (or the .tsv)")
    ap.add_argument("--out", type=Path, default=HOLDOUT_FILE)
    args = ap.parse_args(argv)
    opener = gzip.open if args.labels.suffix == ".gz" else open
    with opener(args.labels, "rt") as f:
        rows = choose(parse_qmnist(f.read().splitlines()))
    atomic_write_bytes(args.out, render(rows).encode())
    writers = {r[3] for r in rows}
    students = sum(r[2] == STUDENTS for r in rows)
    print(f"{args.out}: {len(rows)} images of {len(writers)} writers ({students} students', "
          f"{len(rows) - students} employees')")


if __name__ == "__main__":
    cli(main)
