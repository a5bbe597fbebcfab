"""python -m commands seeds: one model over several seeds, with -S overrides that reach the run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml

from bignn import paths
from bignn.compression import decode_file
from bignn.config import Params, params_from_dict
from bignn.data import Split, split_of
from bignn.io import save_checkpoint
from bignn.training import score
from commands import cluster, seeds
from stages import combine, distill
from tests.tiny import tiny_dict


def test_overrides_set_nested_keys_as_yaml_values() -> None:
    raw = tiny_dict()
    out = seeds.with_overrides(raw, ["prune.dropout=false", "prune.augment=0.5", "seed=3"])
    assert out["prune"]["dropout"] is False and out["prune"]["augment"] == 0.5 and out["seed"] == 3
    assert raw["prune"]["dropout"] is True and raw["prune"]["augment"] == 1.0  # the input is left alone
    with pytest.raises(ValueError, match="expected section.key=value"):
        seeds.with_overrides(raw, ["prune.dropout"])
    with pytest.raises(ValueError, match="seed is not a section"):
        seeds.with_overrides(raw, ["seed.x=1"])


def test_each_seed_runs_with_the_overrides(synthetic_root: Path, in_tmp: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Params] = []

    def fake(params: Params, data: tuple, base: object) -> torch.nn.Module:
        seen.append(params)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

    monkeypatch.setitem(seeds.MODELS, "channel", ("channel.seed", fake))
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(tiny_dict(data={"root": str(synthetic_root),
                                                                       "verify": False})))
    assert tiny_dict()["channel"]["dropout"] is True  # the overrides below change something
    seeds.main(["channel", "--seeds", "4", "5", "-S", "channel.dropout=false", "-S", "channel.augment=0.25"])
    assert [p.channel.seed for p in seen] == [4, 5]
    assert all(p.channel.dropout is False and p.channel.augment == 0.25 for p in seen)


def test_summary_is_mean_and_std() -> None:
    rows = [{"accuracy": a} for a in (99.0, 99.2, 99.4)]
    assert seeds.summary(rows) == "99.20 ± 0.20 over 3 seeds (99.00 / 99.20 / 99.40)"
    with pytest.raises(ValueError, match="model: expected one of"):
        seeds.run("nope", [0], tiny_dict())


def watch_held_out_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Split, Split]]:
    """The (train, scored) data each `student` seed run gets, its model a stand-in; reading the test set fails."""
    seen: list[tuple[Split, Split]] = []

    def fake(params: Params, data: tuple[Split, Split], base: object) -> torch.nn.Module:
        seen.append(data)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

    def no_test(cfg: object, train: bool, limit: int | None = None) -> Split:
        assert train, "a held-out run read the test set"
        return real(cfg, train, limit)

    real = seeds.split_of
    monkeypatch.setitem(seeds.MODELS, "student", ("distill.seed", fake))
    monkeypatch.setattr(seeds, "split_of", no_test)
    return seen


def test_holdout_trains_without_the_last_images_and_scores_on_them(synthetic_root: Path, in_tmp: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """--holdout N: the run trains on all but the last N training images and is scored on those N; the test
    set is never read."""
    seen = watch_held_out_runs(monkeypatch)
    raw = tiny_dict(data={"root": str(synthetic_root), "verify": False})
    rows = seeds.run("student", [0, 1], raw, holdout=300)
    assert [(len(a), len(b)) for a, b in seen] == [(1700, 300)] * 2 and len(rows) == 2
    full = split_of(seeds.params_from_dict(raw).data, True)
    assert torch.equal(seen[0][1].images, full.images[-300:])
    with pytest.raises(ValueError, match="--holdout must be between 1 and the 1999 training images, got 2000"):
        seeds.run("student", [0], raw, holdout=2000)


def test_held_out_pruning_starts_from_a_dense_model_that_never_saw_those_images(
        synthetic_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed dense model trained on every training image: a held-out pruned run starts instead from one
    trained once here without the held-out images, a fresh copy for each seed; combined, which starts from a
    committed channel or student model, refuses to hold out."""
    trained: list[int] = []
    starts: list[torch.nn.Module] = []
    untouched: list[bool] = []

    def dense(params: Params, data: tuple, base: object) -> torch.nn.Module:
        trained.append(len(data[0]))
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

    def pruned(params: Params, data: tuple, base: seeds.Base) -> torch.nn.Module:
        starts.append(base())
        untouched.append(bool(starts[-1][1].weight.any()))
        with torch.no_grad():
            starts[-1][1].weight.zero_()  # what pruning does to its copy must not reach the next seed's
        return starts[-1]

    monkeypatch.setattr(seeds, "_dense", dense)
    monkeypatch.setitem(seeds.MODELS, "pruned", ("prune.seed", pruned))
    raw = tiny_dict(data={"root": str(synthetic_root), "verify": False})
    seeds.run("pruned", [0, 1, 2], raw, holdout=300)
    assert trained == [1700]
    assert len({id(m) for m in starts}) == 3 and untouched == [True] * 3
    # A distilled student's teacher is that dense model too, not the committed one (there is none here).
    teachers: list[torch.nn.Module | None] = []

    def student(p: Params, train: object, test: object, gen: object, teacher: torch.nn.Module | None,
                device: object) -> tuple[torch.nn.Module]:
        teachers.append(teacher)
        return (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),)

    monkeypatch.setattr(seeds.recipes, "train_student", student)
    seeds.run("student", [0], tiny_dict(data={"root": str(synthetic_root), "verify": False},
                                        distill={"alpha": 0.5}), holdout=300)
    assert trained == [1700, 1700] and isinstance(teachers[0], torch.nn.Sequential)
    with pytest.raises(ValueError, match="--holdout: combined starts from the committed"):
        seeds.run("combined", [0], raw, holdout=300)


def test_the_smallest_chain_trains_the_student_then_prunes_and_codes_it(synthetic_root: Path, in_tmp: Path,
                                                                        ) -> None:
    """`smallest`: a student from its seed (no committed file needed) pruned to combine.amount and coded; the
    score is the decoded file's, and its bytes are reported, part by part."""
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "dense.pth").write_bytes(b"x" * 1000)  # only its size is read (the x-smaller ratio)
    raw = tiny_dict(data={"root": str(synthetic_root), "verify": False},
                    distill={"alpha": 0.0, "student": {"conv_channels": [4, 8], "hidden": [], "dropout": 0.0}},
                    combine={"amount": 0.5, "finetune_epochs": 1, "source": "student"},
                    compress={"coder": "range", "quantizer": "kmeans", "bits": 4})
    rows = seeds.run("smallest", [0], raw, holdout=500)
    # conv 4, 8 with no hidden layer: 4,278 parameters, 17,112 bytes in float32
    assert rows[0]["accuracy"] > 50 and 0 < rows[0]["bytes"] < 17_112 / 2
    # The range-coded file by part, adding up to its bytes.
    parts = rows[0]["parts"]
    assert list(parts) == ["magic", "header", "positions", "values", "tables", "dense"]
    assert sum(parts.values()) == rows[0]["bytes"] and parts["tables"] == 3 * 16 * 2


def test_smallest_writes_the_file_the_distill_and_combine_stages_write(synthetic_root: Path, in_tmp: Path) -> None:
    """The same params give the same bytes by either route, global_vd included (the stages load a checkpoint
    after seeding, drawing from torch's global RNG; the dropout noise must not depend on it)."""
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "dense.pth").write_bytes(b"x" * 1000)
    raw = tiny_dict(data={"root": str(synthetic_root), "verify": False},
                    distill={"alpha": 0.0, "student": {"conv_channels": [4, 8], "hidden": [], "dropout": 0.0}},
                    combine={"amount": 0.5, "finetune_epochs": 1, "source": "student", "method": "global_vd",
                             "vd_epochs": 1, "steps": 1},
                    compress={"coder": "range", "quantizer": "kmeans", "bits": 4})
    rows = seeds.run("smallest", [0], raw, holdout=0)
    params = params_from_dict(raw)
    student, _ = distill.run(params, paths.DENSE_MODEL)
    save_checkpoint(in_tmp / "student.pth", student)
    blob, _ = combine.run(params, in_tmp / "student.pth")
    assert rows[0]["bytes"] == len(blob) and rows[0]["accuracy"] == score(decode_file(blob),
                                                                          split_of(params.data, False))["accuracy"]


def test_a_candidate_gives_what_its_own_run_gives(synthetic_root: Path, in_tmp: Path) -> None:
    """`--candidate`: each recipe made from one student a seed reads as a run of its own with the same overrides
    (the recipe before it, pruned from the same student, left that student as it was)."""
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "dense.pth").write_bytes(b"x" * 1000)
    raw = tiny_dict(data={"root": str(synthetic_root), "verify": False},
                    distill={"alpha": 0.0, "student": {"conv_channels": [4, 8], "hidden": [], "dropout": 0.0}},
                    combine={"amount": 0.5, "finetune_epochs": 1, "source": "student"},
                    compress={"coder": "range", "quantizer": "kmeans", "bits": 4})
    rows = seeds.run("smallest", [1], raw, holdout=500, candidates=[["combine.amount=0.98", "compress.bits=3"]])
    alone = seeds.run("smallest", [1], seeds.with_overrides(raw, ["combine.amount=0.98", "compress.bits=3"]),
                      holdout=500)
    assert [r["candidate"] for r in rows] == ["", "combine.amount=0.98 compress.bits=3"]
    assert rows[1]["bytes"] < rows[0]["bytes"]  # 2% kept at 3 bits against 50% at 4
    assert rows[0]["student_accuracy"] == rows[1]["student_accuracy"] > 50
    assert rows[0]["before_coding"] > rows[1]["before_coding"]  # each its own pruned model, scored
    assert (rows[1]["accuracy"], rows[1]["bytes"], rows[1]["parts"]) == (alone[0]["accuracy"], alone[0]["bytes"],
                                                                         alone[0]["parts"])


@pytest.mark.parametrize(("model", "holdout", "candidate", "message"), [
    ("pruned", 500, "combine.amount=0.8", "only with smallest"),
    ("smallest", 0, "combine.amount=0.8", "add --holdout N or --holdout-writers"),
    ("smallest", 500, "distill.epochs=3", "--candidate distill.epochs=3: only combine.*, compress.* keys")])
def test_candidates_are_refused_where_they_cannot_share_a_student_or_would_read_the_test_set(
        model: str, holdout: int, candidate: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace(".", r"\.")):
        seeds.run(model, [0], tiny_dict(), holdout=holdout, candidates=[[candidate]])


def test_dask_tasks_run_the_same_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--runner dask`: each seed's task is this command for that seed, its --candidate recipes included."""
    tasks: list[tuple[str, list[str]]] = []

    def fake_run_modules(given: list[tuple[str, list[str]]], **_: object) -> list[cluster.Result]:
        tasks.extend(given)
        rows = [[{"seed": int(name[-1]), "accuracy": 99.0, "seconds": 1.0}] for name, _ in given]
        return [cluster.Result(name, "done", output=json.dumps(r)) for (name, _), r in zip(given, rows, strict=True)]

    monkeypatch.setattr(cluster, "run_modules", fake_run_modules)
    args = argparse.Namespace(model="smallest", seeds=[0, 1], overrides=["combine=kb8"], holdout=0,
                              holdout_writers=Path("data/holdout-writers.tsv"),
                              candidate=[["combine.amount=0.72"], ["combine.finetune_epochs=12", "compress.bits=3"]],
                              cluster="local", scheduler=None, jobs=2, git_remote=None, dvc_remote=None)
    assert [r["seed"] for r in seeds.run_dask(args, threads=1)] == [0, 1]
    assert tasks[1] == ("seeds-smallest-1", [
        "commands", "seeds", "smallest", "--seeds", "1", "--json", "-S", "combine=kb8",
        "--holdout-writers", "data/holdout-writers.tsv", "--candidate", "combine.amount=0.72",
        "--candidate", "combine.finetune_epochs=12", "compress.bits=3"])
