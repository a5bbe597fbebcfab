"""Is a change more than seed noise? One model's test accuracy over several seeds, mean ± std (not a stage).

    python -m commands seeds channel --seeds 0 1 2
    python -m commands seeds pruned --seeds 0 1 2 -S prune.dropout=false -S prune.augment=0.5
    python -m commands seeds pruned -S prune=p99
    python -m commands seeds smallest --holdout-writers -S combine=kb8 --candidate combine.amount=0.72

Runs the stage's own run() once per seed, in this process, on the params `dvc exp run` would compose with the
same -S overrides (commands/params.py; params.yaml itself where there is no conf/), and the models the
pipeline left in models/ (a retrained dense model for `dense`, else the committed dense model and, for
`combined`, the committed channel model), and scores each result on the test set. `--holdout N` scores on the
last N training images instead and trains without them, the dense model a pruned run starts from (or a student
distills from) included; `--holdout-writers` does the same with every training image of 46 writers, half of
them students like half the test set's (commands/writers.py), a split that reads more like the test set;
`--candidate` (smallest only, held out) adds recipes that differ in combine.* or compress.*, each made from
the same student a seed, trained once. The compressed forms (`compressed`, `combined`) are scored as evaluate
scores them: decoded from their bytes. Writes no model file; `--save` writes the runs to
metrics/seeds/<model>.json, from which README's seed table is generated (`python -m commands tables`). On
MNIST one seed moves accuracy by about 0.1 pt, so a claim below ~0.2 pt needs three seeds or more.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from bignn import paths, recipes
from bignn.compression import RANGE_MAGIC, decode_file
from bignn.config import Params, load_params, params_from_dict
from bignn.data import Split, split_of
from bignn.io import float_model, load_checkpoint, write_json
from bignn.metrics import machine_metrics
from bignn.pruning.unstructured import prune_model
from bignn.runtime import cli, resolve_device, seeded, setup, use_device
from bignn.training import score
from commands import cluster, filebytes, writers
from commands.params import compose

Data = tuple[Split, Split]
# A fresh copy of the dense model that pruned, compressed and channel runs start from (and a distilled student
# learns from).
Base = Callable[[], nn.Module]


def _device(p: Params) -> torch.device:
    return resolve_device(p.device)  # main() has set it up (use_device); one device for every seed


def _dense(p: Params, data: Data, _base: Base) -> nn.Module:
    return recipes.train_dense(p, *data, seeded(p.seed), device=_device(p))[0]


def _pruned(p: Params, data: Data, base: Base) -> nn.Module:
    gen = seeded(p.prune.seed)
    model = base()
    prune_model(model, p.prune, p.train, *data, gen, device=_device(p))
    return model


def _compressed(p: Params, data: Data, base: Base) -> tuple[nn.Module, bytes]:
    blob = recipes.coded_file(p.compress, p.prune, p.train, _pruned(p, data, base), paths.DENSE_MODEL.stat().st_size,
                              1, data[0], seeded(p.prune.seed), _device(p))[0]
    return decode_file(blob), blob


def _channel(p: Params, data: Data, base: Base) -> nn.Module:
    gen = seeded(p.channel.seed)
    model = base()
    recipes.channel_prune(model, p, *data, gen, device=_device(p))
    return model


def _combined(p: Params, data: Data, _base: Base) -> tuple[nn.Module, bytes]:
    source = {"channel": paths.CHANNEL_MODEL, "student": paths.STUDENT_MODEL}[p.combine.source]
    gen = seeded(p.combine.seed)
    model = load_checkpoint(source)[0]
    prune_model(model, p.combine, p.train, *data, gen, device=_device(p))
    blob = recipes.combined_file(p, model, paths.DENSE_MODEL.stat().st_size, source.stat().st_size, data[0], gen,
                                 _device(p))[0]
    return decode_file(blob), blob


def _smallest(p: Params, data: Data, base: Base) -> tuple[nn.Module, bytes]:
    """The student trained from its seed here (not the committed one: it may have seen a held-out split), then
    pruned and compressed as the combine stage does with `combine.source: student`."""
    return _student_file(p, data, _student(p, data, base))


def _student_file(p: Params, data: Data, student: nn.Module,
                  pruned: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, bytes]:
    """`student` pruned and compressed as the combine stage does with `combine.source: student` (the student
    itself is left as it was); `pruned` sees the pruned model before it is coded."""
    size = sum(t.numel() * t.element_size() for t in student.state_dict().values())
    gen = seeded(p.combine.seed)
    # Rebuilt after seeding, as the combine stage loads its checkpoint, so that nothing drawn from torch's RNG
    # differs from the stage's run (global_vd's noise no longer draws from it: bignn/pruning/variational.py).
    model = float_model({"model_args": student.model_args, "state_dict": student.state_dict()}, "the student")
    prune_model(model, p.combine, p.train, *data, gen, device=_device(p))
    if pruned is not None:
        pruned(model)
    blob = recipes.combined_file(p, model, paths.DENSE_MODEL.stat().st_size, size, data[0], gen, _device(p))[0]
    return decode_file(blob), blob


def _student(p: Params, data: Data, base: Base) -> nn.Module:
    # models/student.pth: distilled only where distill.alpha > 0 (opt-in), else the student alone.
    teacher = base() if p.distill.alpha > 0 else None
    return recipes.train_student(p, *data, seeded(p.distill.seed), teacher, device=_device(p))[0]


# model name -> (the params keys that seed it, comma-separated, what trains it). The compressed forms also give
# their file's bytes: its size is the number a size target is about (and, range-coded, its parts'); they are
# scored as evaluate scores them, decoded.
MODELS: dict[str, tuple[str, Callable[[Params, Data, Base], nn.Module | tuple[nn.Module, bytes]]]] = {
    "dense": ("seed", _dense), "pruned": ("prune.seed", _pruned), "compressed": ("prune.seed", _compressed),
    "channel": ("channel.seed", _channel), "combined": ("combine.seed", _combined),
    "student": ("distill.seed", _student), "smallest": ("distill.seed,combine.seed", _smallest),
}


def with_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """params.yaml's dict with `section.key=value` overrides (values in YAML, as `dvc exp run -S` takes them)."""
    out = yaml.safe_load(yaml.safe_dump(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"-S {item!r}: expected section.key=value")
        *sections, leaf = key.split(".")
        node = out
        for name in sections:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ValueError(f"-S {item!r}: {name} is not a section")
        node[leaf] = yaml.safe_load(value)
    return out


def base_params(overrides: Sequence[str]) -> dict[str, Any]:
    """The params these runs start from: with conf/, what `dvc exp run -S ...` would write (presets such as
    `-S prune=p99` included); without it, params.yaml with the overrides set key by key."""
    if (paths.CONF_DIR / "config.yaml").is_file():
        return yaml.safe_load(compose(overrides))
    load_params()  # params.yaml itself must be valid before the overrides are applied to it
    return with_overrides(yaml.safe_load(paths.PARAMS_FILE.read_text()), overrides)


def holdout_split(train: Split, holdout: int | Path) -> Data:
    """The training split without the images held out, and those images: a recipe is chosen on them, never on
    the test set. `holdout` is a count (the last ones) or a file of training indices (commands/writers.py:
    every image of some writers, whom the rest then never saw); the order within each part is the training
    set's."""
    if isinstance(holdout, Path):
        held = torch.zeros(len(train), dtype=torch.bool)
        held[writers.load(holdout, train.labels)] = True
    else:
        if not 0 < holdout < len(train):
            raise ValueError(f"--holdout must be between 1 and the {len(train) - 1} training images, got {holdout}")
        held = torch.arange(len(train)) >= len(train) - holdout
    return (Split(train.images[~held], train.labels[~held]), Split(train.images[held], train.labels[held]))


def dense_base(params: Params, data: Data, holdout: int | Path) -> Base:
    """What pruned, compressed and channel runs start from, and a distilled student's teacher: the committed
    dense model, or with `holdout` one trained here once (on first use, seed `seed`) without the held-out
    images, which the committed model has seen: a recipe is then judged on images neither its starting point
    nor its teacher trained on."""
    if not holdout:
        return lambda: load_checkpoint(paths.DENSE_MODEL)[0]
    trained: list[nn.Module] = []

    def base() -> nn.Module:
        if not trained:
            trained.append(_dense(params, data, base))
        return copy.deepcopy(trained[0])

    return base


def file_size(blob: bytes) -> dict[str, Any]:
    """A compressed file's bytes, and a range-coded one's by part (magic, header, positions, values, tables,
    dense: commands.filebytes)."""
    return {"bytes": len(blob), **({"parts": filebytes.report(blob)["parts"]} if blob.startswith(RANGE_MAGIC) else {})}


# What a candidate may set: the combine stage's pruning and the coder, which act on the trained student.
CANDIDATE_KEYS = ("combine.", "compress.")


def check_candidates(model: str, candidates: Sequence[Sequence[str]], holdout: int | Path) -> None:
    """Candidates share one student per seed, so they may set only what is done to it after its training, and
    they are compared on held-out images: a recipe is never chosen on the test set."""
    if not candidates:
        return
    if model != "smallest":
        raise ValueError(f"--candidate: only with smallest (its candidates share one student a seed), got {model}")
    if not holdout:
        raise ValueError("--candidate compares recipes: add --holdout N or --holdout-writers (never the test set)")
    for item in (i for c in candidates for i in c):
        if not item.startswith(CANDIDATE_KEYS):
            raise ValueError(f"--candidate {item}: only {', '.join(k + '*' for k in CANDIDATE_KEYS)} keys, which "
                             f"act after the shared student's training")


def run(model: str, seeds: Sequence[int], raw: dict[str, Any], holdout: int | Path = 0,
        candidates: Sequence[Sequence[str]] = ()) -> list[dict[str, Any]]:
    """One row per seed: the seed, the accuracy (%) on the test set (or, with `holdout`, on the training images
    it holds out (holdout_split), which the run then trains without, and so does the dense model a pruned,
    compressed or channel run starts from or a student distills from: see dense_base) and the seconds it took
    (the first held-out seed's includes the dense model's training). With `candidates` (smallest only, held
    out), one row per seed and recipe instead: the student trained once a seed, then pruned and coded as `raw`
    says and as each candidate's overrides say; `candidate` names the overrides ("" for `raw`'s own),
    `before_coding` and `student_accuracy` are the pruned model's and the student's accuracy, and `seconds`
    is the pruning and coding, the student's training in `student_seconds`."""
    if model not in MODELS:
        raise ValueError(f"model: expected one of {sorted(MODELS)}, got {model!r}")
    if holdout and model == "combined":
        raise ValueError("--holdout: combined starts from the committed channel or student model, which has seen "
                         "the held-out images; hold out with smallest (a student trained here) instead")
    check_candidates(model, candidates, holdout)
    key, make = MODELS[model]
    rows = []
    base: Base | None = None
    for seed in seeds:
        own = [f"{k}={seed}" for k in key.split(",")]
        params = params_from_dict(with_overrides(raw, own))
        t0 = time.perf_counter()
        train = split_of(params.data, train=True)
        data = holdout_split(train, holdout) if holdout else (train, split_of(params.data, train=False))
        base = base or dense_base(params, data, holdout)  # one held-out dense model serves every seed
        if candidates:
            rows += _candidate_rows(seed, raw, own, candidates, data, _student(params, data, base), t0)
            continue
        made = make(params, data, base)
        trained, blob = made if isinstance(made, tuple) else (made, None)
        test = data[1]
        rows.append({"seed": seed, "accuracy": score(trained, test)["accuracy"],
                     "seconds": time.perf_counter() - t0, **({} if blob is None else file_size(blob))})
        in_bytes = "" if blob is None else f", {len(blob):,} B"
        print(f"{model} {key}={seed}: {rows[-1]['accuracy']:.2f}%{in_bytes} ({rows[-1]['seconds']:.0f} s)",
              flush=True)
    return rows


def _candidate_rows(seed: int, raw: dict[str, Any], own: list[str], candidates: Sequence[Sequence[str]],
                    data: Data, student: nn.Module, t0: float) -> list[dict[str, Any]]:
    """One seed's student (trained since t0) made into `raw`'s file and each candidate's, scored held out, with
    the student's own accuracy and each pruned model's before coding: where a file loses to its student."""
    student_seconds = time.perf_counter() - t0
    student_accuracy = score(student, data[1])["accuracy"]
    rows = []
    for overrides in ([], *candidates):
        t1 = time.perf_counter()
        before: list[float] = []
        trained, blob = _student_file(params_from_dict(with_overrides(raw, [*own, *overrides])), data, student,
                                      lambda m, out=before: out.append(score(m, data[1])["accuracy"]))
        rows.append({"seed": seed, "candidate": " ".join(overrides), "accuracy": score(trained, data[1])["accuracy"],
                     "before_coding": before[0], "student_accuracy": student_accuracy,
                     "seconds": time.perf_counter() - t1, "student_seconds": student_seconds, **file_size(blob)})
        print(f"smallest seed {seed} {rows[-1]['candidate'] or '(as -S says)'}: {rows[-1]['accuracy']:.2f}%, "
              f"{len(blob):,} B ({before[0]:.2f}% before coding, the student {student_accuracy:.2f}%; "
              f"{rows[-1]['seconds']:.0f} s)", flush=True)
    return rows


def run_dask(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """One Dask task per seed (commands/cluster.py): each runs this command for its seed in a clone of the
    commit, with the commit's models pulled from the DVC remote; the rows come back in seed order."""
    own = [*[a for o in args.overrides for a in ("-S", o)],
           *(["--holdout", str(args.holdout)] if args.holdout else []),
           *(["--holdout-writers", str(args.holdout_writers)] if args.holdout_writers else []),
           *[a for c in args.candidate for a in ("--candidate", *c)]]
    tasks = [(f"seeds-{args.model}-{seed}", ["commands", "seeds", args.model, "--seeds", str(seed), "--json", *own])
             for seed in args.seeds]
    results = cluster.run_modules(tasks, cluster=args.cluster, scheduler=args.scheduler, jobs=args.jobs,
                                  threads=threads, git_remote=args.git_remote, dvc_remote=args.dvc_remote)
    failed = cluster.failures(results)
    if failed:
        raise ValueError(f"failed seeds: {failed}")
    rows = [row for r in results for row in json.loads(r.output.strip().splitlines()[-1])]
    for row in rows:
        print(f"{args.model} seed {row['seed']}: {row['accuracy']:.2f}% ({row['seconds']:.0f} s, on Dask)")
    return rows


def mean_std(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    acc = [r["accuracy"] for r in rows]
    return statistics.mean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0


def summary(rows: Sequence[dict[str, Any]]) -> str:
    mean, std = mean_std(rows)
    each = " / ".join(f"{r['accuracy']:.2f}" for r in rows)
    return f"{mean:.2f} ± {std:.2f} over {len(rows)} seeds ({each})"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a param for these runs only (params.yaml is not changed)")
    held = ap.add_mutually_exclusive_group()
    held.add_argument("--holdout", type=int, default=0, metavar="N",
                      help="train without the last N training images and score on them instead of the test set")
    held.add_argument("--holdout-writers", type=Path, nargs="?", const=writers.HOLDOUT_FILE, metavar="FILE",
                      help="the same with the training images FILE lists: by default every image of 46 writers "
                           f"({writers.HOLDOUT_FILE}, commands/writers.py)")
    ap.add_argument("--candidate", action="append", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                    help="smallest, held out: also this recipe (combine.* and compress.* overrides on top of -S), "
                         "made from the same student a seed; repeat for more")
    ap.add_argument("--save", action="store_true", help=f"write the runs to {paths.SEEDS_DIR}/<name>.json")
    ap.add_argument("--name", help="the name --save writes under (default: the model's), e.g. smallest-kb8")
    ap.add_argument("--json", action="store_true", help="print each seed's row as JSON (what a Dask task returns)")
    cluster.add_arguments(ap, runners=("here", "dask"))
    args = ap.parse_args(argv)
    holdout = args.holdout_writers or args.holdout
    if args.save and holdout:
        raise ValueError("--save writes test-set results for README; a --holdout run only chooses a recipe")
    raw = base_params(args.overrides)
    params = params_from_dict(raw)
    setup(params.threads, params.kernels)
    device = use_device(params.device)
    check_candidates(args.model, args.candidate, holdout)
    rows = (run_dask(args, params.threads) if args.runner == "dask" else
            run(args.model, args.seeds, raw, holdout, args.candidate))
    where = (f" on the training images of {holdout}'s writers (held out)" if isinstance(holdout, Path) else
             f" on the last {holdout} training images (held out)" if holdout else "")
    for candidate in dict.fromkeys(r.get("candidate", "") for r in rows):
        print(f"{args.model} {' '.join(filter(None, [*args.overrides, candidate]))}: "
              f"{summary([r for r in rows if r.get('candidate', '') == candidate])}{where}")
    if args.save:
        mean, std = mean_std(rows)
        write_json(paths.SEEDS_DIR / f"{args.name or args.model}.json", {
            "model": args.model, "overrides": args.overrides, "runs": rows, "mean": mean, "std": std,
            "command": " ".join(["python -m commands seeds", args.model, "--seeds", *map(str, args.seeds),
                                 *[f"-S {o}" for o in args.overrides], "--save",
                                 *([f"--name {args.name}"] if args.name else [])]),
            "machine": machine_metrics(params.threads, params.kernels, device)})
    if args.json:  # last: a Dask task reads the last line
        print(json.dumps(rows))


if __name__ == "__main__":
    cli(main)
