"""Every method at several settings and seeds, as queued DVC experiments: which gives the smallest file and
the fastest model for an accuracy budget (not a pipeline stage).

    python -m commands frontier                 # 10 groups x 3 seeds, one at a time (2 h 7 min on 2 cores),
                                              # write metrics/frontier_sweep.csv and frontier.png
    python -m commands frontier --groups p99    # only the 99% preset's three seeds (the other rows of the
                                              # table stay, each naming the commit it was run on)
    python -m commands frontier --collect-only  # only rebuild the table and the picture from `dvc exp show`
    python -m commands frontier --collect-only --baseline <commit> [<commit> ...]   # queued on earlier commits
    python -m commands frontier --groups kb4 kb2 --points-only   # one part of a run: its points, not the table

A run can come in parts (some groups per session, or per machine of one CPU type): every experiment's points
are kept in metrics/frontier_points.json; a later run on the same pipeline code and CPU does not run those
experiments again (--rerun does) and adds its own points to theirs, so the table of the last part holds every
part's (parts on other code or another CPU are left out). Code that differs only in conf/ or params.yaml is the
same for a group that composes the same params.yaml from it: after a preset change, only its group runs again.

Three size groups (light, default, heavy) each set one size per method at once (prune.amount, channel.amount,
combine.amount, the student's shape) and one seed for all of them (prune.seed, channel.seed, combine.seed,
distill.seed); the preset groups select a preset of conf/ and vary that stage's seed only (p99, p995:
prune.seed; s16, s8: combine.seed; kb8, kb4, kb2, which train their own student: distill.seed and
combine.seed). Every experiment runs up to `evaluate`: the dense model comes from the
DVC cache, never retrained, and export is skipped. Each model a group measures is one point per experiment;
the points of one method and setting are averaged over the seeds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import statistics
import subprocess
import tarfile
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bignn import paths
from bignn.config import load_params
from bignn.io import write_csv, write_json
from bignn.metrics import machine_metrics
from bignn.runtime import cli
from commands import cluster
from commands.cluster import Experiment
from commands.sweep import check_cores, dvc, experiments, markdown, run_dask, run_queue

PREFIX = "frontier-"
# The stages' own seeds: none of them retrains the dense model (the top-level `seed` would).
SEED_KEYS = ("prune.seed", "channel.seed", "combine.seed", "distill.seed")


def _file(model: str) -> str:
    """The key `dvc exp show --json` gives evaluate's metrics file of one model."""
    return paths.model_metrics(model).as_posix()


# Each method on the picture: the metrics file evaluate writes for it, and the params that set its size.
STUDENT = ("distill.student.conv_channels", "distill.student.hidden")
# The dense model is measured in every experiment too: its point averages those timings, taken under the same
# conditions as the others' (its accuracy is one model's).
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dense": (_file("dense"), ()),
    "unstructured + compressed": (_file("compressed"), ("prune.amount",)),
    "channel": (_file("channel"), ("channel.amount",)),
    "channel int8": (_file("channel_int8"), ("channel.amount",)),
    "channel + unstructured + compressed": (_file("combined"), ("channel.amount", "combine.amount")),
    "student (distilled)": (_file("student"), STUDENT),
    "student alone": (_file("student"), STUDENT),
    # The combine stage's file again, when `combine.source: student` made it from the student.
    "student + unstructured + compressed": (_file("combined"), ("combine.amount",)),
}


def made_here(method: str, params: Mapping[str, Any]) -> bool:
    """Whether an experiment with these params made this method's model: the combine stage's one file is the
    channel model's or the student's, as combine.source says; the one student file holds the distilled
    student where distill.alpha > 0, the student alone otherwise."""
    source = params.get("combine", {}).get("source", "channel")
    distilled = float(params.get("distill", {}).get("alpha", 0.0)) > 0
    if method == "student (distilled)":
        return distilled
    if method == "student alone":
        return not distilled
    if method == "channel + unstructured + compressed":
        return source == "channel"
    if method == "student + unstructured + compressed":
        return source == "student"
    return True


@dataclass(frozen=True)
class Group:
    """One setting of the frontier, run once per seed: its `-S` overrides, the stage seeds it varies, and the
    methods it measures (a preset of one stage leaves the other stages' models as the default group has them,
    from the run-cache: counting them again would double the default group's runs)."""

    sets: Mapping[str, str]
    seed_keys: tuple[str, ...] = SEED_KEYS
    methods: tuple[str, ...] = tuple(METHODS)
    preset: str = ""


UNSTRUCTURED = ("dense", "unstructured + compressed")
SMALLEST = ("dense", "student + unstructured + compressed")
# One size per method in each size group, from the smallest cut-back to the largest; "default" is
# params.yaml's own (prune 95%, channel 75%, combined 80% of the channel model, the 98,554-parameter
# student). Then the named presets of conf/ (`dvc exp run -S prune=p99`, `-S combine=s16`).
GROUPS: dict[str, Group] = {
    "light": Group({"prune.amount": "0.9", "channel.amount": "0.5", "combine.amount": "0.7",
                    "distill.student.hidden": "[48]"}),
    "default": Group({}),
    "heavy": Group({"prune.amount": "0.98", "channel.amount": "0.875", "combine.amount": "0.9",
                    "distill.student.conv_channels": "[8,16,32]", "distill.student.hidden": "[64]"}),
    "p99": Group({"prune": "p99"}, ("prune.seed",), UNSTRUCTURED, "p99"),
    "p995": Group({"prune": "p995"}, ("prune.seed",), UNSTRUCTURED, "p995"),
    "s16": Group({"combine": "s16"}, ("combine.seed",), SMALLEST, "s16"),
    "s8": Group({"combine": "s8"}, ("combine.seed",), SMALLEST, "s8"),
    # The global presets train their own student: its seed varies with the pruning's.
    "kb8": Group({"combine": "kb8"}, ("distill.seed", "combine.seed"), SMALLEST, "kb8"),
    "kb4": Group({"combine": "kb4"}, ("distill.seed", "combine.seed"), SMALLEST, "kb4"),
    "kb2": Group({"combine": "kb2"}, ("distill.seed", "combine.seed"), SMALLEST, "kb2"),
}
SEEDS = (0, 1, 2)
FRONTIER_CSV = paths.FRONTIER_SWEEP_CSV
FRONTIER_PNG = paths.FRONTIER_PNG
# Every experiment's points (and its preset file's layers) that the table was made from, with the code digests of
# the commits they ran on: what a later part of the same run adds to.
POINTS_JSON = paths.METRICS_DIR / "frontier_points.json"
LEVELS = (99.5, 99.4, 99.3, 99.0)


# What decides an experiment's files: the library, the stages, the params and presets, the pipeline, the pins.
# A row queued on a commit where none of these differ from this checkout is what this checkout gives.
CODE = ("bignn/", "stages/", "conf/", "dvc.yaml", "params.yaml", "requirements.txt")


def _git_out(args: Sequence[str], cwd: str | Path | None, stdin: str | None = None) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True)
    if res.returncode != 0:
        raise ValueError(f"git {args[0]} failed: {res.stderr.strip()[-300:]}")
    return res.stdout


def code_digests(commit: str | None = None, cwd: str | Path | None = None) -> dict[str, str]:
    """Per entry of CODE, a digest of its tracked files (their paths and git's blob ids): at `commit`, or in
    this checkout's files, committed or not, where None. Blob ids, not history: a shallow clone can tell too."""
    if commit:
        lines = _git_out(["ls-tree", "-r", commit, "--", *CODE], cwd).splitlines()
        blobs = {line.split("\t", 1)[1]: line.split()[2] for line in lines}
    else:
        paths_ = [f for f in _git_out(["ls-files", "--", *CODE], cwd).splitlines() if Path(cwd or ".", f).exists()]
        ids = _git_out(["hash-object", "--stdin-paths"], cwd, "".join(f"{f}\n" for f in paths_)).split()
        blobs = dict(zip(paths_, ids, strict=True))
    return {part: hashlib.sha1("".join(f"{f} {b}\n" for f, b in sorted(blobs.items())
                                       if f == part or f.startswith(part)).encode()).hexdigest()[:12]
            for part in CODE}


def code_changes(digests: Mapping[str, str], cwd: str | Path | None = None) -> list[str]:
    """The entries of CODE in which this checkout's files differ from those `digests` (code_digests) describe."""
    here = code_digests(None, cwd)
    return [part for part in CODE if digests.get(part) != here[part]]


# The parts of CODE that only say which params.yaml an experiment composes: where nothing else changed, a row is
# still what this checkout gives if its group composes the same params.yaml from this checkout's conf/.
PARAMS_PARTS = ("conf/", "params.yaml")


def composed_digests(groups: Iterable[str], commit: str | None = None, cwd: str | Path | None = None,
                     ) -> dict[str, str]:
    """Per group, a digest of the params.yaml its experiments compose (its overrides, seeds aside) from conf/ at
    `commit`, or from this checkout's conf/ where None; "" where that conf/ cannot compose it (or a shallow clone
    does not hold the commit)."""
    from commands.params import compose  # Hydra and DVC: loaded only where a digest is asked for

    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(cwd or ".", paths.CONF_DIR)
        if commit:
            res = subprocess.run(["git", "archive", commit, str(paths.CONF_DIR)], cwd=cwd, capture_output=True)
            if res.returncode != 0:
                return {g: "" for g in groups}
            with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
                tar.extractall(tmp, filter="data")
            conf = Path(tmp, paths.CONF_DIR)
        out = {}
        for g in groups:
            try:
                text = compose(["=".join(kv) for kv in GROUPS[g].sets.items()], conf)
            except (KeyError, ValueError, FileNotFoundError):  # a group, a preset or a key that is gone
                text = ""
            out[g] = hashlib.sha1(text.encode()).hexdigest()[:12] if text else ""
        return out


def row_groups(rows: Iterable[Mapping[str, Any]], commit: str) -> set[str]:
    """The groups whose experiments gave the rows naming `commit`; empty if a row does not say (a table written
    before rows named their groups)."""
    named = [r for r in rows if commit in r["commit"].split(" + ")]
    if not named or any(not r.get("groups") for r in named):
        return set()
    return {g for r in named for g in r["groups"].split(" + ")}


def stale_groups(changed: Collection[str], recorded: Mapping[str, str], groups: Collection[str]) -> list[str] | None:
    """Of `groups` (those a commit's rows came from), the ones whose params.yaml this checkout's conf/ composes
    otherwise than the commit's did (`recorded`: composed_digests there), where `changed` (code_changes since the
    commit) holds nothing but conf/ or params.yaml: [] if their rows are still what this checkout gives (a new
    preset, a comment). None where other code changed or the groups are unknown: any row may differ."""
    if not groups or not set(changed) <= set(PARAMS_PARTS):
        return None
    now = composed_digests(sorted(groups))
    return [g for g in sorted(groups) if not recorded.get(g) or recorded[g] != now[g]]


def holds(params: Mapping[str, Any], sets: Mapping[str, str]) -> bool:
    """Whether params (params.yaml's dict) already holds every `key: value` of sets (a preset such as
    `prune: p99` names a file of conf/, not a value: never)."""
    try:
        return all(param(params, key) == yaml.safe_load(value) for key, value in sets.items())
    except (KeyError, TypeError):
        return False


def frontier_experiments(groups: Sequence[str] = tuple(GROUPS), seeds: Sequence[int] = SEEDS,
                         target: str = "evaluate", skip: Collection[str] = (),
                         params: Mapping[str, Any] | None = None) -> list[Experiment]:
    """One experiment per group and seed, named frontier-<group>-<seed>, run up to `target`; none of `skip`.
    The one whose overrides params (the commit's params.yaml) already holds runs `target` again (force): DVC
    would give it the commit's own outputs, measured on whichever machine committed dvc.lock."""
    exps = []
    for name in groups:
        group = GROUPS[name]
        for seed in (s for s in seeds if f"{PREFIX}{name}-{s}" not in skip):
            sets = {**group.sets, **{key: str(seed) for key in group.seed_keys}}
            exps.append(Experiment(f"{PREFIX}{name}-{seed}", tuple("=".join(kv) for kv in sets.items()), target,
                                   force=params is not None and holds(params, sets)))
    return exps


def queue_commands(groups: Sequence[str] = tuple(GROUPS), seeds: Sequence[int] = SEEDS,
                   target: str = "evaluate", skip: Collection[str] = (),
                   params: Mapping[str, Any] | None = None) -> list[list[str]]:
    """One `dvc exp run --queue` per group and seed (DVC's own queue: --runner queue)."""
    return [["dvc", "exp", "run", "--queue", "-n", e.name, *[arg for kv in e.sets for arg in ("-S", kv)],
             *e.target_args()] for e in frontier_experiments(groups, seeds, target, skip, params)]


def group_name(experiment: str) -> str | None:
    """The group's name in an experiment named frontier-<group>-<seed>; None for any other name."""
    name, _, seed = experiment.removeprefix(PREFIX).rpartition("-")
    return name if experiment.startswith(PREFIX) and seed.isdigit() else None


def group_of(experiment: str) -> Group | None:
    """The group of an experiment named frontier-<group>-<seed>; None for any other name."""
    name = group_name(experiment)
    return GROUPS.get(name) if name else None


def param(params: Mapping[str, Any], dotted: str) -> Any:
    """params["a"]["b"] for "a.b"."""
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return value


def setting_label(params: Mapping[str, Any], keys: Sequence[str], preset: str = "") -> str:
    """A CSV cell without commas (io.write_csv does not quote): "conv 16/32/64 + FC 128",
    "prune.amount 0.99 (p99)"."""
    if not keys:
        return "as trained"
    if keys == STUDENT:
        conv, hidden = ("/".join(str(c) for c in param(params, k)) for k in keys)
        return f"conv {conv} + FC {hidden}"
    label = " + ".join(f"{k} {param(params, k):g}" for k in keys)
    return f"{label} ({preset})" if preset else label


def machine_label(m: Mapping[str, Any]) -> str:
    """A CPU as the table names it, from machine_metrics' dict: "AMD EPYC (2 cores)"."""
    return f"{m['cpu']} ({m['physical_cores']} cores)"


def _machine(data: Mapping[str, Any]) -> str:
    """The CPU an experiment ran on, from its metrics/machine.json ("unknown" where it has none)."""
    m = data["metrics"].get(paths.MACHINE_METRICS.as_posix(), {}).get("data")
    return machine_label(m) if m else "unknown"


def points(shown: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """One point per frontier experiment and method: its setting, accuracy, bytes and batch-1 latency, and where
    it ran (the experiment, the commit it was queued on, the CPU). An experiment name found under two baselines
    is an error: which of the two is meant is not for this to guess."""
    seen: set[str] = set()
    for baseline in shown:
        for name, data in experiments([baseline]):
            group = group_of(name)
            if group is None:
                continue
            if name in seen:
                raise ValueError(f"experiment {name} is under more than one of the baselines given; pass "
                                 "--baseline for only one of them, or `dvc exp remove` the older")
            seen.add(name)
            params = data["params"]["params.yaml"]["data"]
            where = {"commit": baseline["rev"][:7], "machine": _machine(data)}
            for method in (m for m in group.methods if made_here(m, params)):
                file, keys = METHODS[method]
                m = data["metrics"][file]["data"]
                yield {"experiment": name, "method": method, "setting": setting_label(params, keys, group.preset),
                       "accuracy": m["accuracy"], "bytes": m["checkpoint_bytes"], "params": m["params_total"],
                       "latency_b1_ms": m["latency_b1_ms"], **where}


def _std(xs: Sequence[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def summarize(pts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over the runs (seeds) of each method and setting; log10 columns for `dvc plots` (its
    scatter template has linear axes); pareto_* marks the points no other point beats on both axes."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in pts:
        groups.setdefault((p["method"], p["setting"]), []).append(p)
    return pareto([_row(method, setting, g) for (method, setting), g in groups.items()])


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark, in place, the rows no other row beats on both accuracy and bytes (pareto_bytes) or accuracy and
    latency (pareto_latency); returns the rows."""
    for axis, key in (("bytes", "pareto_bytes"), ("latency_b1_ms", "pareto_latency")):
        for r in rows:
            r[key] = not any(o["accuracy"] >= r["accuracy"] and o[axis] <= r[axis]
                             and (o["accuracy"], o[axis]) != (r["accuracy"], r[axis]) for o in rows)
    return rows


def _joined(g: list[dict[str, Any]], key: str) -> str:
    """The distinct values of one column over a row's runs, e.g. the commits its seeds were queued on."""
    return " + ".join(sorted({p[key] for p in g}))


def _row(method: str, setting: str, g: list[dict[str, Any]]) -> dict[str, Any]:
    acc, size, lat = ([p[k] for p in g] for k in ("accuracy", "bytes", "latency_b1_ms"))
    size_mean, lat_mean = statistics.mean(size), statistics.mean(lat)
    return {"method": method, "setting": setting, "runs": len(g), "accuracy": round(statistics.mean(acc), 3),
            "accuracy_std": round(_std(acc), 3), "bytes": round(size_mean), "params": g[0]["params"],
            "latency_b1_ms": round(lat_mean, 4), "latency_std": round(_std(lat), 4),
            "log10_bytes": round(math.log10(size_mean), 4), "log10_latency_ms": round(math.log10(lat_mean), 4),
            "commit": _joined(g, "commit"), "machine": _joined(g, "machine"),
            "groups": " + ".join(sorted({name for p in g if (name := group_name(p["experiment"]))}))}


def carry(new: list[dict[str, Any]], old: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new rows, then the old table's rows of every method and setting this run did not measure and of no
    group only this run measured (a run of some groups leaves the others' rows in the table, each still naming
    the commit it came from), Pareto marks taken again over them all; refused when those rows ran on another
    CPU than this run."""
    measured = {(r["method"], r["setting"]) for r in new}
    ran = {g for r in new for g in r["groups"].split(" + ") if g}
    # A group this run measured replaces every row it gave before, also one whose setting its preset changed.
    kept = [dict(r) for r in old if (r["method"], r["setting"]) not in measured
            and not (r.get("groups") and set(r["groups"].split(" + ")) <= ran)]
    here, there = {r["machine"] for r in new}, {r["machine"] for r in kept}
    if there - here:
        # One table has one dense row: latencies and their "x faster" from two CPUs would read as one machine's.
        raise ValueError(f"frontier: this run's experiments ran on {', '.join(sorted(here))} and the table's other "
                         f"rows on {', '.join(sorted(there - here))}; run every group on one machine "
                         "(python -m commands frontier) or write this run's rows alone "
                         "(--collect-only --only-this-run)")
    return pareto([*new, *kept])


INTS, BOOLS = ("runs", "bytes", "params"), ("pareto_bytes", "pareto_latency")
TEXT = ("method", "setting", "commit", "machine", "groups")


def read_rows(path: Path = FRONTIER_CSV) -> list[dict[str, Any]]:
    """The rows `collect` wrote, with their types back (a table written before rows named their commit and
    machine gets "unknown" for both, one before they named their groups "")."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v if k in TEXT else int(v) if k in INTS else v == "True" if k in BOOLS else float(v)
             for k, v in {"commit": "unknown", "machine": "unknown", "groups": "", **r}.items()} for r in rows]


def best_per_level(rows: Sequence[dict[str, Any]], levels: Sequence[float] = LEVELS) -> list[dict[str, Any]]:
    """For each accuracy level: the smallest and the fastest point whose mean accuracy reaches it, each with the
    runner-up and whether the gap between them is larger than both stds (bytes barely move between seeds;
    latency moves 10-20% between runs here)."""
    out = []
    for level in levels:
        ok = [r for r in rows if r["accuracy"] >= level]
        out.append({"level": level, "smallest": _best(ok, "bytes", None), "fastest": _best(ok, "latency_b1_ms",
                                                                                        "latency_std")})
    return out


def _best(ok: list[dict[str, Any]], axis: str, std: str | None) -> str:
    if not ok:
        return "none"
    first, *rest = sorted(ok, key=lambda r: r[axis])
    text = _describe(first, axis)
    if rest:
        gap = rest[0][axis] - first[axis]
        noise = 0.0 if std is None else max(first[std], rest[0][std])
        verdict = "gap > both stds" if gap > noise else "within the stds: a tie"
        text += f"; next {rest[0]['method']} ({rest[0]['setting']}) {_value(rest[0], axis)}, {verdict}"
    return text


def _value(r: dict[str, Any], axis: str) -> str:
    return f"{r['bytes']:,} B" if axis == "bytes" else f"{r['latency_b1_ms']:.3f} ± {r['latency_std']:.3f} ms"


def _describe(r: dict[str, Any], axis: str) -> str:
    return f"{r['method']} ({r['setting']}): {_value(r, axis)}, {r['accuracy']:.2f} ± {r['accuracy_std']:.2f}%"


def _short(setting: str) -> str:
    """A setting label without its param names: "channel.amount 0.5 + combine.amount 0.7" -> "0.5 + 0.7",
    "prune.amount 0.99 (p99)" -> "0.99 (p99)"."""
    return " + ".join(" ".join(part.split()[1:]) for part in setting.split(" + "))


Y_FLOOR = 98.6  # accuracy axis floor: below it a point is drawn on the floor as a down arrow with its value


def draw(rows: Sequence[dict[str, Any]], path: Path | None = None) -> Any:
    """Accuracy against bytes on disk and against batch-1 latency, log x, one series per method, bars one std
    over seeds (latency: over runs too); written to `path` as PNG when given. Returns the matplotlib figure."""
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")  # no display where the module runs from the command line
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharey=True)
    dense = next(r for r in rows if r["method"] == "dense")
    for ax, (x, xerr, label) in zip(axes, (("bytes", None, "bytes on disk"),
                                           ("latency_b1_ms", "latency_std", "batch-1 latency, ms")), strict=True):
        for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"):
            # In size order on both panels: each line runs from the smallest setting to the largest.
            series = sorted((r for r in rows if r["method"] == method), key=lambda r: r["bytes"])
            shown = [r for r in series if r["accuracy"] >= Y_FLOOR]
            line = ax.errorbar([r[x] for r in shown], [r["accuracy"] for r in shown],
                               yerr=[r["accuracy_std"] for r in shown],
                               xerr=None if xerr is None else [r[xerr] for r in shown],
                               marker="o", capsize=3, label=method)
            if x == "bytes" and method != "student alone":  # the distilled student's labels name its sizes
                for r in shown:
                    ax.annotate(_short(r["setting"]), (r[x], r["accuracy"]), textcoords="offset points",
                                xytext=(4, -9), fontsize=6, color=line[0].get_color())
            for r in (r for r in series if r["accuracy"] < Y_FLOOR):
                ax.plot([r[x]], [Y_FLOOR + 0.02], "v", color=line[0].get_color(), markersize=9)
                ax.annotate(f"{r['accuracy']:.2f} ± {r['accuracy_std']:.2f}", (r[x], Y_FLOOR + 0.02),
                            textcoords="offset points", xytext=(6, 2), fontsize=7, color=line[0].get_color())
        ax.errorbar([dense[x]], [dense["accuracy"]], xerr=None if xerr is None else [dense[xerr]],
                    fmt="k*", markersize=14, label="dense")
        ax.axhline(dense["accuracy"], color="k", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.set_ylim(bottom=Y_FLOOR)
        if x != "bytes":  # milliseconds as plain numbers, not powers of ten
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if round(v * 10) % 2 == 0 else ""))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), mean ± std over three seeds")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("MNIST: accuracy per byte and per millisecond, every method and the presets (mean ± std over seeds)")
    fig.tight_layout()
    if path is not None:
        # No software/date metadata: the same rows give the same PNG bytes.
        fig.savefig(path, dpi=100, metadata={"Software": None})
    return fig


# The file each preset is about: its per-layer nonzero counts go to metrics/frontier_layers.csv.
PRESET_FILES = {"unstructured + compressed": paths.COMPRESSED_MODEL,
                "student + unstructured + compressed": paths.COMBINED_MODEL}


def preset_layers(shown: list[dict[str, Any]], cache: Path = Path(".dvc/cache/files/md5")) -> list[dict[str, Any]]:
    """Per conv / linear layer, the weights and nonzero weights of each preset's file in its lowest-seed
    experiment, read from the DVC cache (the default local cache folder) by the hash `dvc exp show` gives the
    experiment's output."""
    from bignn.forms import load_compressed  # both preset files are compressed .bin files
    from bignn.pruning.unstructured import layer_sparsity

    first: dict[str, tuple[int, dict[str, Any]]] = {}
    for name, data in experiments(shown):
        group = group_of(name)
        if group is not None and group.preset:
            seed = int(name.rpartition("-")[2])
            if group.preset not in first or seed < first[group.preset][0]:
                first[group.preset] = (seed, data)
    rows = []
    for preset, (seed, data) in sorted(first.items()):
        method = next(m for m in GROUPS[preset].methods if m in PRESET_FILES)
        digest = data["outs"][PRESET_FILES[method].as_posix()]["hash"]
        model = load_compressed(cache / digest[:2] / digest[2:])
        rows += [{"preset": preset, "seed": seed, "method": method, **r} for r in layer_sparsity(model)]
    return rows


def _old_layers(kept: set[str]) -> list[dict[str, str]]:
    """The layer rows of metrics/frontier_layers.csv of presets this run did not measure."""
    if not paths.FRONTIER_LAYERS_CSV.exists():
        return []
    with paths.FRONTIER_LAYERS_CSV.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["preset"] not in kept]


def _recorded() -> dict[str, Any]:
    return json.loads(POINTS_JSON.read_text()) if POINTS_JSON.exists() else {}


def lowest_seed(layers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layer rows of each preset's lowest-seed experiment."""
    first: dict[str, int] = {}
    for r in layers:
        first[r["preset"]] = min(first.get(r["preset"], r["seed"]), r["seed"])
    return [r for r in layers if r["seed"] == first[r["preset"]]]


def current_groups(recorded: Mapping[str, Any], code: Mapping[str, str], ref: str = "HEAD",
                   cwd: str | Path | None = None) -> dict[str, Collection[str]]:
    """Per commit `recorded` (a frontier_points.json) holds points of, the groups whose points are what the code
    `code` describes (that of commit `ref`) gives: all of them where the commit's code is the same, those that
    compose the same params.yaml at both commits where only conf/ or params.yaml differ, none otherwise."""
    out: dict[str, Collection[str]] = {}
    for commit, digests in recorded.get("code", {}).items():
        changed = {part for part in CODE if digests.get(part) != code.get(part)}
        groups = sorted({g for p in recorded.get("points", []) if p["commit"] == commit
                         and (g := group_name(p["experiment"]))})
        if not changed:
            out[commit] = groups
        elif changed <= set(PARAMS_PARTS) and groups:
            then, now = composed_digests(groups, commit, cwd), composed_digests(groups, ref, cwd)
            out[commit] = [g for g in groups if then[g] and then[g] == now[g]]
        else:
            out[commit] = []
    return out


def _ran_here(recorded: Mapping[str, Any], code: Mapping[str, str], machine: str, ref: str = "HEAD",
              cwd: str | Path | None = None) -> list[dict[str, Any]]:
    """The points `recorded` (a frontier_points.json) holds that ran on this CPU and are what this pipeline code
    gives (current_groups): a change to one preset leaves the other groups' points standing."""
    current = current_groups(recorded, code, ref, cwd)
    return [p for p in recorded.get("points", []) if p["machine"] == machine
            and group_name(p["experiment"]) in current.get(p["commit"], ())]


def recorded_here(recorded: Mapping[str, Any], code: Mapping[str, str], machine: str, ref: str = "HEAD",
                  cwd: str | Path | None = None) -> set[str]:
    """The experiments an earlier part of this run measured (what this code gives, on this CPU): not run again."""
    return {p["experiment"] for p in _ran_here(recorded, code, machine, ref, cwd)}


def earlier_parts(names: Collection[str], code: Mapping[str, str], machine: str, recorded: Mapping[str, Any],
                  ref: str = "HEAD", cwd: str | Path | None = None,
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The points and layer rows `recorded` holds of experiments this run (`names`) did not measure, where they
    ran on this run's CPU and are what its pipeline code gives: the earlier parts of one run, or groups a preset
    change left as they were. Any others are another run's, and left out."""
    kept = [p for p in _ran_here(recorded, code, machine, ref, cwd) if p["experiment"] not in names]
    left = {p["experiment"] for p in recorded.get("points", [])} - names - {p["experiment"] for p in kept}
    if left:
        print(f"frontier: {len(left)} experiments of {POINTS_JSON} ran on other pipeline code or another CPU than "
              f"this run: left out ({', '.join(sorted(left))})")
    groups = {p["experiment"] for p in kept}
    return kept, [r for r in recorded.get("layers", []) if f"{PREFIX}{r['preset']}-{r['seed']}" in groups]


def collect(baselines: Sequence[str] = ("HEAD",), keep: bool = True, table: bool = True) -> list[dict[str, Any]]:
    """Rows of the experiments queued on `baselines` (DVC files each under the commit it was queued on) and of
    the earlier parts of the same run (earlier_parts), with the committed table's rows of every other method
    and setting when `keep` (see carry), and beside them where this run ran (metrics/frontier_run.json: docs/
    name the machine from it). Every point goes to metrics/frontier_points.json; the table, the picture and
    the layers only where `table`."""
    shown = json.loads(dvc("exp", "show", "--json", *[arg for rev in baselines for arg in ("--rev", rev)]))
    pts = list(points(shown))
    params = load_params()
    # This run's commits, code and CPU: its experiments', or where all of them came from earlier parts, HEAD's.
    code = {c: code_digests(c) for c in dict.fromkeys(p["commit"] for p in pts)} or {
        _git_out(["rev-parse", "--short=7", baselines[0]], None).strip(): code_digests(baselines[0])}
    machine = pts[0]["machine"] if pts else machine_label(machine_metrics(params.threads, params.kernels))
    recorded = _recorded()
    ref = next(iter(code))
    more, more_layers = earlier_parts({p["experiment"] for p in pts}, code[ref], machine, recorded, ref)
    pts += more
    if not pts:
        raise RuntimeError(f"no {PREFIX}* experiments on {', '.join(baselines)} in `dvc exp show` or in "
                           f"{POINTS_JSON}; run `python -m commands frontier` (or --baseline the commits they were "
                           "queued on)")
    # One column order and presets in name order, whichever part measured them: a part rewrites few lines.
    layers = sorted(({k: r[k] for k in sorted(r)} for r in lowest_seed(preset_layers(shown) + more_layers)),
                    key=lambda r: r["preset"])
    # The commits the points came from (HEAD stands in above only where this run measured none: not one of them).
    code = {c: code.get(c) or recorded["code"][c] for c in dict.fromkeys(p["commit"] for p in pts)}
    write_json(POINTS_JSON, {"code": code, "layers": layers, "points": pts})
    rows = summarize(pts)
    if not table:
        return rows
    if keep and FRONTIER_CSV.exists():
        rows = carry(rows, read_rows(FRONTIER_CSV))
        layers += _old_layers({r["preset"] for r in layers})
    write_csv(paths.FRONTIER_LAYERS_CSV, layers)  # first: it refuses no rows, before the table is replaced
    write_csv(FRONTIER_CSV, rows)
    draw(rows, FRONTIER_PNG)
    baseline = list(code)  # the commits this run's points came from
    # Rows of earlier runs still in the table: the commits they name, and their code as that run recorded it.
    carried = sorted({c for r in rows for c in r["commit"].split(" + ")} - set(baseline))
    old = json.loads(paths.FRONTIER_JSON.read_text()) if paths.FRONTIER_JSON.exists() else {}
    write_json(paths.FRONTIER_JSON, {
        "baseline": baseline,
        "experiments": sorted({p["experiment"] for p in pts}),
        "carried": carried,
        "code": {**{c: old["code"][c] for c in carried if c in old.get("code", {})}, **code},
        # What each group composed at each commit: a later change to conf/ leaves the rows of the groups it
        # does not touch current (stale_groups).
        "composed": {**{c: old["composed"][c] for c in carried if c in old.get("composed", {})},
                     **{c: composed_digests(GROUPS, c) for c in code}},
        # Which groups' experiments each commit ran: one row (the dense model's) can hold several commits' points.
        "groups": {**{c: old["groups"][c] for c in carried if c in old.get("groups", {})},
                   **{c: sorted({g for p in pts if p["commit"] == c and (g := group_name(p["experiment"]))})
                      for c in code}},
        "machine": machine_metrics(params.threads, params.kernels)})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS),
                    help="run only these groups (the others' experiments, if any, stay in the table)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--baseline", nargs="+", default=["HEAD"], help="with --collect-only: the commits the "
                    "experiments were queued on, when there have been commits since (groups run at different "
                    "commits: name each)")
    ap.add_argument("--only-this-run", action="store_true", help="write only this run's rows, its earlier parts' "
                    "included (by default the table keeps the rows of the methods and settings it did not "
                    "measure, each naming its commit)")
    ap.add_argument("--points-only", action="store_true", help="write only metrics/frontier_points.json, not the "
                    "table, the picture or the layers: one part of a run that a later part completes")
    ap.add_argument("--rerun", action="store_true", help="run every experiment named, also those "
                    "metrics/frontier_points.json holds from this code and CPU")
    cluster.add_arguments(ap)
    args = ap.parse_args(argv)
    failed = ""  # the cluster's failed experiments, one line each
    prefixes = tuple(f"{PREFIX}{g}-" for g in args.groups)
    params = load_params()
    # Experiments an earlier part of this run measured on this code and CPU are not run again.
    here = machine_label(machine_metrics(params.threads, params.kernels))
    done = set() if args.rerun else recorded_here(_recorded(), code_digests("HEAD"), here)
    committed = yaml.safe_load(paths.PARAMS_FILE.read_text())
    exps = frontier_experiments(args.groups, args.seeds, skip=done, params=committed)
    if done and not args.collect_only:
        print(f"frontier: {len(done)} experiments of {POINTS_JSON} are what this code gives on this CPU: not run again "
              f"({', '.join(sorted(done))}; --rerun runs them)")
    if args.collect_only or not exps:
        pass
    elif args.runner == "queue":
        jobs = args.jobs or 1
        check_cores(jobs, params.threads, os.cpu_count() or 1)
        run_queue(queue_commands(args.groups, args.seeds, skip=done, params=committed), jobs, prefixes)
    else:
        failed = cluster.failures(run_dask(exps, args, prefixes, params.threads))
    rows = collect(args.baseline, keep=not args.only_this_run, table=not args.points_only)
    print(markdown([{k: r[k] for k in ("method", "setting", "runs", "accuracy", "accuracy_std", "bytes",
                                       "latency_b1_ms", "pareto_bytes", "pareto_latency")} for r in rows]))
    print(markdown(best_per_level(rows)))
    if failed:
        raise ValueError(f"failed experiments: {failed}")


if __name__ == "__main__":
    cli(main)
