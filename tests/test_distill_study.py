"""python -m commands.distill_study: distilled students paired with the same student alone, seed by seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from commands import distill_study
from tests.conftest import tiny_dict


def _rows(alone: list[float], distilled: list[float], temperature: float = 4.0) -> list[dict]:
    return ([{"seed": s, "temperature": None, "accuracy": a} for s, a in enumerate(alone)]
            + [{"seed": s, "temperature": temperature, "accuracy": a} for s, a in enumerate(distilled)])


def test_the_gain_is_the_mean_paired_difference_and_needs_two_standard_errors() -> None:
    # Every pair +0.1 give or take 0.01: a small gain, but far beyond its standard error.
    steady = distill_study.paired(_rows([99.0, 99.3, 98.9], [99.1, 99.41, 98.99]), 4.0)
    assert steady["gain"] == pytest.approx(0.1, abs=1e-9) and steady["seeds"] == [0, 1, 2]
    assert steady["gain_se"] == pytest.approx(statistics_se([0.1, 0.11, 0.09]))
    assert steady["verdict"] == "gain"
    # The same mean gain from pairs that disagree in sign: not beyond two standard errors.
    noisy = distill_study.paired(_rows([99.0, 99.3, 98.9], [99.4, 99.1, 99.0]), 4.0)
    assert noisy["gain"] == pytest.approx(0.1, abs=1e-9) and noisy["verdict"].startswith("no gain")
    # Means of each arm over the paired seeds only.
    assert steady["alone_mean"] == pytest.approx(99.0667, abs=1e-4)
    with pytest.raises(ValueError, match="temperature 2: need at least two seeds"):
        distill_study.paired(_rows([99.0], [99.1], temperature=2.0), 2.0)


def statistics_se(diffs: list[float]) -> float:
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) / math.sqrt(len(diffs))


def test_a_teacher_without_label_smoothing_and_paired_students_end_to_end(
        synthetic_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    teachers, students = [], []
    real_train, real_student = distill_study.train.run, distill_study.distill.train_student

    def spy_train(params):  # type: ignore[no-untyped-def]
        teachers.append(params)
        return real_train(params)

    def spy_student(params, teacher):  # type: ignore[no-untyped-def]
        students.append((params, teacher))
        return real_student(params, teacher)

    monkeypatch.setattr(distill_study.train, "run", spy_train)
    monkeypatch.setattr(distill_study.distill, "train_student", spy_student)
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(tiny_dict(data={"root": str(synthetic_root),
                                                                       "verify": False})))
    distill_study.main(["--seeds", "0", "1", "--temperatures", "2", "20", "--teacher-label-smoothing", "0",
                        "--student-label-smoothing", "0", "--save"])
    d = json.loads((in_tmp / "metrics" / "distill_study.json").read_text())
    assert d["teacher"] == "a dense model trained with train.label_smoothing=0"
    assert d["student"]["label_smoothing"] == 0 and d["alpha"] == 0.9
    # One student alone per seed and one per temperature: the alone arm is shared by every temperature.
    assert sorted((r["seed"], r["temperature"] or 0) for r in d["runs"]) == [(0, 0), (0, 2), (0, 20), (1, 0),
                                                                            (1, 2), (1, 20)]
    assert [p["temperature"] for p in d["pairs"]] == [2, 20]
    assert all(0 <= r["accuracy"] <= 100 for r in d["runs"]) and d["machine"]["threads"] >= 1
    assert d["command"].startswith("python -m commands.distill_study --seeds 0 1")
    # The teacher trained once, without label smoothing; the alone arm had no teacher, the others that one, at
    # their temperature, each student without label smoothing and with its own seed.
    assert len(teachers) == 1 and teachers[0].train.label_smoothing == 0
    assert [(p.distill.seed, p.distill.temperature if t is not None else None) for p, t in students] == [
        (0, None), (0, 2), (0, 20), (1, None), (1, 2), (1, 20)]
    assert len({id(t) for _, t in students if t is not None}) == 1
    assert all(p.train.label_smoothing == 0 and p.distill.alpha == 0.9 for p, _ in students)
