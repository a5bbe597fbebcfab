"""Does distillation earn its place? Distilled students paired with the same student trained alone, over seeds
and temperatures, with a teacher of one's choosing (not a stage).

    python -m commands.distill_study --seeds 0 1 2 3 4 --temperatures 2 5 20 --alpha 0.9 \
        --teacher-label-smoothing 0 --student-label-smoothing 0 --save
        # a teacher trained without label smoothing (one dense run, ~5 min on 2 cores), then for each seed the
        # student alone and distilled at each temperature (~40 s a student): metrics/distill_study.json

Each pair shares everything but the teacher's soft targets: the student's seed, data order, augmentation and
epochs. The gain at a temperature is the mean of the paired differences (distilled − alone) and its standard
error the std of those differences over √n; the verdict is "gain" only where the mean exceeds twice that
error (a rule fixed before the runs). Without --teacher-label-smoothing the teacher is the committed dense
model (models/big_model.pth); with it, a dense model trained here from params.yaml's `seed` with that label
smoothing, kept in memory only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from torch import nn

from commands.seeds import base_params, with_overrides
from stages import distill, train
from stages.common import paths
from stages.common.config import Params, params_from_dict
from stages.common.data import load_split
from stages.common.io import load_checkpoint, write_json
from stages.common.metrics import machine_metrics
from stages.common.runtime import cli
from stages.common.training import score

STUDY_JSON = paths.DISTILL_STUDY_JSON


def teacher(raw: dict[str, Any], label_smoothing: float | None) -> tuple[nn.Module, str]:
    """The teacher and a line saying which it is: the committed dense model, or one trained here."""
    if label_smoothing is None:
        return load_checkpoint(paths.DENSE_MODEL)[0], f"the committed dense model ({paths.DENSE_MODEL})"
    params = params_from_dict(with_overrides(raw, [f"train.label_smoothing={label_smoothing}"]))
    return train.run(params)[0], f"a dense model trained with train.label_smoothing={label_smoothing:g}"


def paired(rows: Sequence[dict[str, Any]], temperature: float) -> dict[str, Any]:
    """Mean ± std of each arm and of the paired differences at one temperature, the standard error of the
    mean difference, and whether the gain beats twice it."""
    alone = {r["seed"]: r["accuracy"] for r in rows if r["temperature"] is None}
    dist = {r["seed"]: r["accuracy"] for r in rows if r["temperature"] == temperature}
    seeds = sorted(set(alone) & set(dist))
    if len(seeds) < 2:
        raise ValueError(f"temperature {temperature:g}: need at least two seeds with both students, got {seeds}")
    diffs = [dist[s] - alone[s] for s in seeds]
    gain, sd = statistics.mean(diffs), statistics.stdev(diffs)
    se = sd / math.sqrt(len(diffs))
    return {"temperature": temperature, "seeds": seeds, "distilled_mean": statistics.mean(dist[s] for s in seeds),
            "distilled_std": statistics.stdev(dist[s] for s in seeds),
            "alone_mean": statistics.mean(alone[s] for s in seeds),
            "alone_std": statistics.stdev(alone[s] for s in seeds), "gain": gain, "gain_std": sd, "gain_se": se,
            "verdict": "gain" if gain > 2 * se else "no gain beyond 2 standard errors"}


def student_params(raw: dict[str, Any], seed: int, temperature: float | None, alpha: float,
                   label_smoothing: float | None) -> Params:
    sets = [f"distill.seed={seed}", f"distill.alpha={alpha}"]
    sets += [] if temperature is None else [f"distill.temperature={temperature}"]
    sets += [] if label_smoothing is None else [f"train.label_smoothing={label_smoothing}"]
    return params_from_dict(with_overrides(raw, sets))


def run(raw: dict[str, Any], seeds: Sequence[int], temperatures: Sequence[float], alpha: float,
        teacher_ls: float | None, student_ls: float | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    model, which = teacher(raw, teacher_ls)
    base = params_from_dict(raw)
    test = load_split(base.data.root, train=False, limit=base.data.test_limit, verify=base.data.verify)
    rows = []
    for seed in seeds:
        for temperature in (None, *temperatures):
            params = student_params(raw, seed, temperature, alpha, student_ls)
            student = distill.train_student(params, None if temperature is None else model)[0]
            rows.append({"seed": seed, "temperature": temperature, "accuracy": score(student, test)["accuracy"]})
            arm = "alone" if temperature is None else f"T={temperature:g}"
            print(f"seed {seed} {arm}: {rows[-1]['accuracy']:.2f}%", flush=True)
    return {"teacher": which, "teacher_accuracy": score(model, test)["accuracy"], "alpha": alpha,
            "student": {"conv_channels": base.distill.student.conv_channels, "hidden": base.distill.student.hidden,
                        "epochs": base.distill.epochs,
                        "label_smoothing": base.train.label_smoothing if student_ls is None else student_ls},
            "runs": rows, "pairs": [paired(rows, t) for t in temperatures],
            "seconds": time.perf_counter() - t0}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[2.0, 5.0, 20.0])
    ap.add_argument("--alpha", type=float, default=0.9, help="weight of the soft-target term (distill.alpha)")
    ap.add_argument("--teacher-label-smoothing", type=float, help="train a teacher with this label smoothing "
                    "(default: the committed dense model)")
    ap.add_argument("--student-label-smoothing", type=float, help="the students' label smoothing "
                    "(default: train.label_smoothing)")
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a param for these runs only (params.yaml is not changed)")
    ap.add_argument("--save", action="store_true", help=f"write the study to {STUDY_JSON}")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if len(args.seeds) < 2:
        ap.error("--seeds: at least two, for a standard error of the paired differences")
    raw = base_params(args.overrides)
    result = run(raw, args.seeds, args.temperatures, args.alpha, args.teacher_label_smoothing,
                 args.student_label_smoothing)
    for p in result["pairs"]:
        print(f"T={p['temperature']:g}: distilled {p['distilled_mean']:.2f} ± {p['distilled_std']:.2f}, alone "
              f"{p['alone_mean']:.2f} ± {p['alone_std']:.2f}, gain {p['gain']:+.3f} (SE {p['gain_se']:.3f}): "
              f"{p['verdict']}")
    if args.save:
        params = params_from_dict(raw)
        command = " ".join(["python -m commands.distill_study", *argv])
        write_json(STUDY_JSON, {**result, "command": command,
                                "machine": machine_metrics(params.threads, params.kernels)})


if __name__ == "__main__":
    cli(main)
