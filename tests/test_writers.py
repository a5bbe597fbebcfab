"""The held-out split by writer (commands/writers.py) and `seeds --holdout-writers`."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
import yaml

from bignn.data import load_split
from commands import seeds, writers
from tests.test_seeds import watch_held_out_runs
from tests.tiny import ROOT, tiny_dict


def qmnist_lines(per_writer: int = 100) -> list[str]:
    """QMNIST-like extended labels: 30 employees (series 0, ids 0-29) and 30 students (series 4, ids 2100-2129),
    their digits interleaved as MNIST's are."""
    lines = []
    for k in range(per_writer):
        for w in [*range(30), *range(2100, 2130)]:
            lines.append("\t".join(map(str, [(w + k) % 10, 4 if w >= 2100 else 0, w, k, 30 + (w + k) % 10,
                                             len(lines), 0, 0])))
    return lines


def test_choose_takes_every_image_of_every_11th_writer_until_each_group_has_enough(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "PER_GROUP", 250)
    rows = writers.parse_qmnist(qmnist_lines())
    held = writers.choose(rows)
    # 100 images a writer: three writers pass 250, every 11th by id from the first in each group.
    assert sorted({r[3] for r in held}) == [0, 11, 22, 2100, 2111, 2122]
    chosen = {r[3] for r in held}
    assert held == [r for r in rows if r[3] in chosen]  # all of their images, in training order
    assert [r[0] for r in held] == sorted(r[0] for r in held)
    with pytest.raises(ValueError, match="line 2: expected 8 tab-separated columns, got 3"):
        writers.parse_qmnist(qmnist_lines()[:1] + ["1\t0\t5"])


def test_main_writes_the_file_that_load_reads_back(tmp_path: Path) -> None:
    labels = tmp_path / "qmnist-train-labels.tsv.gz"
    labels.write_bytes(gzip.compress("\n".join(qmnist_lines(per_writer=200)).encode()))
    out = tmp_path / "held.tsv"
    writers.main([str(labels), "--out", str(out)])
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    rows = writers.parse_qmnist(qmnist_lines(per_writer=200))
    mnist_labels = torch.tensor([r[1] for r in rows])
    index = writers.load(out, mnist_labels)
    assert index.tolist() == [r[0] for r in writers.choose(rows)]
    assert len(index) == 2 * 3 * 200  # 30 writers a group: every 11th is three, all taken though short of 2,500


def test_load_refuses_a_file_out_of_step_with_mnist(tmp_path: Path) -> None:
    path = tmp_path / "held.tsv"
    path.write_text(writers.render([(0, 3, 0, 7), (2, 5, 4, 2100)]))
    assert writers.load(path, torch.tensor([3, 1, 5, 0])).tolist() == [0, 2]
    with pytest.raises(ValueError, match="not MNIST's training set"):
        writers.load(path, torch.tensor([3, 1, 4, 0]))  # a label differs: another order
    with pytest.raises(ValueError, match="a training set of 2 images"):
        writers.load(path, torch.tensor([3, 1]))
    path.write_text("# nothing\n0\t3\tx\t7\n")
    with pytest.raises(ValueError, match="held.tsv: expected lines of index, label, series, writer"):
        writers.load(path, torch.tensor([3]))
    with pytest.raises(ValueError, match="missing.tsv: cannot read the held-out writers' file"):
        writers.load(tmp_path / "missing.tsv", torch.tensor([3]))


def test_holdout_writers_trains_without_the_listed_images_and_scores_on_them(
        synthetic_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run trains on every training image the file does not list and is scored on those it lists; the
    test set is never read, and neither --save nor --holdout goes with it."""
    full = load_split(synthetic_root, train=True, verify=False)
    listed = [3, 10, 11, 500, 1999]
    path = in_tmp / "held.tsv"
    path.write_text(writers.render([(i, int(full.labels[i]), 0, 0) for i in listed]))
    seen = watch_held_out_runs(monkeypatch)
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(tiny_dict(data={"root": str(synthetic_root),
                                                                       "verify": False})))
    seeds.main(["student", "--seeds", "0", "--holdout-writers", str(path)])
    kept, held = seen[0]
    assert torch.equal(held.images, full.images[listed]) and torch.equal(held.labels, full.labels[listed])
    rest = [i for i in range(len(full)) if i not in listed]
    assert torch.equal(kept.images, full.images[rest])
    with pytest.raises(ValueError, match="--save writes test-set results"):
        seeds.main(["student", "--seeds", "0", "--holdout-writers", str(path), "--save"])
    with pytest.raises(SystemExit):
        seeds.main(["student", "--holdout", "5", "--holdout-writers", str(path)])


def test_the_committed_split_is_mnists_and_half_students(tiny_template: tuple[Path, str]) -> None:
    """data/holdout-writers.tsv against the real MNIST labels the session's tiny repo downloaded: every row's
    label is MNIST's at that index; 46 writers, each group over 2,500 images."""
    train = load_split(tiny_template[0] / "data", train=True)
    path = ROOT / writers.HOLDOUT_FILE
    index = writers.load(path, train.labels)
    rows = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    students = sum(r[2] == str(writers.STUDENTS) for r in rows)
    assert len(index) == 5119 and len({r[3] for r in rows}) == 46
    assert students >= 2500 and len(rows) - students >= 2500
