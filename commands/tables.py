"""The results tables of README.md and docs/, written from the committed metrics files so no number drifts
(not a stage).

    python -m commands tables           # rewrite every generated table in README.md and docs/*.md
    python -m commands tables --check   # exit 1 if one differs from what metrics/ gives (the tests run this)

A generated table sits between `<!-- begin NAME -->` and `<!-- end NAME -->`; the text around it is prose.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bignn import paths
from commands import frontier

DOCS = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
# metrics/<file>.json -> column title, in the order the pipeline makes them
MODELS = {"dense": "dense", "pruned": "pruned", "compressed": "compressed", "channel": "channel",
          "channel_int8": "channel int8", "combined": "combined", "student": "student"}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _row(title: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([title, *cells]) + " |"


def results(metrics: Path) -> str:
    """One column per model, one row per measurement: `dvc metrics show` as one table."""
    models = MODELS
    m = {name: _json(metrics / f"{name}.json") for name in models}
    dense_bytes = m["dense"]["checkpoint_bytes"]

    def size(d: dict[str, Any]) -> str:
        b = d["checkpoint_bytes"]
        return f"{b:,}" if b == dense_bytes else f"{b:,} ({dense_bytes / b:.1f}x)"

    rows = [
        ("test accuracy (%)", lambda d: f"{d['accuracy']:.2f}"),
        ("test loss (cross-entropy)", lambda d: f"{d['loss']:.4f}"),
        ("parameters", lambda d: f"{d['params_total']:,}"),
        ("nonzero parameters", lambda d: f"{d['params_nonzero']:,}"),
        ("sparsity of conv + linear weights", lambda d: f"{d['sparsity']:.2f}"),
        ("bytes on disk (x smaller than dense)", size),
        ("batch-1 latency, median (ms)", lambda d: f"{d['latency_b1_ms']:.3f}"),
        ("batch-256 throughput (img/s)", lambda d: f"{d['throughput_ips']:,.0f}"),
        ("model memory at batch 256 (MB)", lambda d: f"{d['peak_mb']:.0f}"),
    ]
    lines = [_row("metric", list(models.values())), _row("---", ["---"] * len(models))]
    lines += [_row(title, [cell(m[name]) for name in models]) for title, cell in rows]
    return "\n".join(lines)


def layers(metrics: Path) -> str:
    """The pruned model's nonzero weights per layer (metrics/layers_pruned.csv)."""
    with (metrics / paths.LAYER_SPARSITY.name).open() as f:
        rows = list(csv.DictReader(f))
    lines = [_row("layer", ["weights", "nonzero", "sparsity"]), _row("---", ["---"] * 3)]
    lines += [_row(r["layer"], [f"{int(r['params']):,}", f"{int(r['nonzero']):,}", f"{float(r['sparsity']):.1%}"])
              for r in rows]
    return "\n".join(lines)


def machine(metrics: Path) -> str:
    """Where the committed run's timings were taken (metrics/machine.json)."""
    d = _json(metrics / paths.MACHINE_METRICS.name)
    return (f"Measured on: lscpu `{d['cpu']}`, {d['physical_cores']} cores, {d['memory_gb']} GB, torch "
            f"{d['torch']}, {d['threads']} threads, `kernels: {d['kernels']}` (ATen ran {d['cpu_capability']}).")


def seeds(metrics: Path) -> str:
    """Each model's accuracy over seeds (metrics/seeds/<model>.json, `python -m commands seeds --save`)."""
    dense = _json(metrics / "dense.json")["accuracy"]
    lines = [_row("model", ["committed run (%)", "mean ± std over seeds (%)", "each seed",
                            "mean vs the committed dense (pt)", "command"]), _row("---", ["---"] * 5)]
    for name, title in MODELS.items():
        path = metrics / paths.SEEDS_DIR.name / f"{name}.json"
        if not path.exists():
            continue
        d = _json(path)
        each = " / ".join(f"{r['accuracy']:.2f}" for r in d["runs"])
        gap = "" if name == "dense" else f"{d['mean'] - dense:+.2f}".replace("-", "−")
        lines.append(_row(title, [f"{_json(metrics / f'{name}.json')['accuracy']:.2f}",
                                  f"{d['mean']:.2f} ± {d['std']:.2f}", each, gap, f"`{d['command']}`"]))
    return "\n".join(lines)


def _machine_line(d: dict[str, Any]) -> str:
    return (f"lscpu `{d['cpu']}`, {d['physical_cores']} cores, {d['threads']} threads, `kernels: {d['kernels']}` "
            f"(ATen ran {d['cpu_capability']}), torch {d['torch']}")


def frontier_run(metrics: Path) -> str:
    """Where the frontier's experiments ran (metrics/frontier_run.json, written by commands.frontier)."""
    d = _json(metrics / paths.FRONTIER_JSON.name)
    commits = "commit " if len(d["baseline"]) == 1 else "commits "
    carried = d["carried"]
    earlier = (f" The rows of {'commit' if len(carried) == 1 else 'commits'} {', '.join(carried)} come from an "
               "earlier run of other groups (each row names its commit and CPU).") if carried else ""
    rows = frontier.read_rows(metrics / paths.FRONTIER_SWEEP_CSV.name)
    return (f"{len(d['experiments'])} experiments queued on {commits}{', '.join(d['baseline'])}, run on: "
            f"{_machine_line(d['machine'])}.{earlier}{_code_line(d, [*d['baseline'], *carried], rows)}")


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _code_line(run: Mapping[str, Any], commits: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """Whether this checkout's pipeline code is that of the commits the rows name (their code digests, recorded
    by the frontier run), or differs there only in conf/ or params.yaml and composes the same params.yaml for
    every group those rows came from; where a group composes another, its rows may not be what the pipeline
    gives now, and where other code changed, any row."""
    recorded, composed, ran = run.get("code", {}), run.get("composed", {}), run.get("groups", {})
    missing = [c for c in commits if c not in recorded]
    if missing:
        return (f" The code of {_and(missing)} is not recorded: whether its rows are what this checkout gives is "
                "unknown.")
    changes = {c: changed for c in commits if (changed := frontier.code_changes(recorded[c]))}
    # The groups each commit's experiments came from: recorded by the run, else read off the rows that name it.
    groups = {c: frontier.stale_groups(changed, composed.get(c, {}), ran.get(c) or frontier.row_groups(rows, c))
              for c, changed in changes.items()}
    parts = {c: _and([f"`{p}`" for p in changed]) for c, changed in changes.items()}
    kept = "".join(f" Since {c} only {parts[c]} changed, and every group its rows came from composes the same "
                   "params.yaml from it." for c, g in groups.items() if g == [])
    if all(g == [] for g in groups.values()):
        whose = "that commit's" if len(commits) == 1 else "those commits'"
        code = "otherwise is" if changes else "is"
        return (f" This checkout's pipeline code ({_and([f'`{p}`' for p in frontier.CODE])}) {code} {whose}: every "
                f"file the rows measured is what it gives now.{kept}")
    alike: dict[tuple[str, tuple[str, ...] | None], list[str]] = {}  # commits with the same change: one sentence
    for c, g in groups.items():
        if g != []:
            alike.setdefault((parts[c], None if g is None else tuple(g)), []).append(c)
    return kept + "".join(_stale(cs, *key) for key, cs in alike.items())


def _stale(commits: list[str], parts: str, groups: tuple[str, ...] | None) -> str:
    since = _and(commits)
    if groups is None:
        return (f" Since {since} this checkout's {parts} changed: {'its' if len(commits) == 1 else 'their'} rows "
                "may not be what the pipeline gives now (`python -m commands frontier` runs them again).")
    names, one = _and([f"`{g}`" for g in groups]), len(groups) == 1
    return (f" Since {since} only {parts} changed, but {names} {'composes' if one else 'compose'} another "
            f"params.yaml from {'it' if len(commits) == 1 else 'them'}: the rows {'it' if one else 'they'} gave may "
            "not be what the pipeline gives now "
            f"(`python -m commands frontier --groups {' '.join(groups)} --rerun` runs them again).")


def _times(value: float, base: float) -> str:
    return f"{base / value:.1f}x"


def _frontier_table(metrics: Path, methods: Sequence[str] | None) -> str:
    rows = frontier.read_rows(metrics / paths.FRONTIER_SWEEP_CSV.name)
    dense = next(r for r in rows if r["method"] == "dense")
    order = list(frontier.METHODS)
    chosen = sorted((r for r in rows if methods is None or r["method"] in methods),
                    key=lambda r: (order.index(r["method"]), -r["bytes"]))
    lines = [_row("method", ["setting", "runs", "accuracy (%), mean ± std", "bytes on disk (x smaller)",
                             "batch-1 latency, ms (x faster)", "Pareto", "commit", "CPU"]),
             _row("---", ["---"] * 8)]
    for r in chosen:
        pareto = ", ".join(k for k, flag in (("B", r["pareto_bytes"]), ("L", r["pareto_latency"])) if flag)
        lines.append(_row(r["method"], [
            r["setting"], str(r["runs"]), f"{r['accuracy']:.2f} ± {r['accuracy_std']:.2f}",
            f"{r['bytes']:,} ({_times(r['bytes'], dense['bytes'])})",
            f"{r['latency_b1_ms']:.3f} ± {r['latency_std']:.3f} ({_times(r['latency_b1_ms'], dense['latency_b1_ms'])})",
            pareto, r["commit"], r["machine"]]))
    return "\n".join(lines)


def frontier_layers(metrics: Path, presets: Sequence[str]) -> str:
    """Per layer, the weights each preset's file keeps (metrics/frontier_layers.csv: its lowest seed)."""
    with (metrics / paths.FRONTIER_LAYERS_CSV.name).open() as f:
        rows = [r for r in csv.DictReader(f) if r["preset"] in presets]
    chosen = [p for p in presets if any(r["preset"] == p for r in rows)]
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    by = {(r["preset"], r["layer"]): r for r in rows}
    seeds = {r["preset"]: r["seed"] for r in rows}
    lines = [_row("layer", [f"{p} (seed {seeds[p]}): nonzero of weights" for p in chosen]),
             _row("---", ["---"] * len(chosen))]
    for layer in layers:
        cells = []
        for p in chosen:
            r = by.get((p, layer))
            cells.append("" if r is None else f"{int(r['nonzero']):,} of {int(r['params']):,} "
                                              f"({int(r['nonzero']) / int(r['params']):.1%})")
        lines.append(_row(layer, cells))
    totals = [sum(int(by[(p, layer)]["nonzero"]) for layer in layers if (p, layer) in by) for p in chosen]
    lines.append(_row("all", [f"{t:,}" for t in totals]))
    return "\n".join(lines)


def distill_study(metrics: Path) -> str:
    """Distilled vs alone students paired by seed (metrics/distill_study.json: the finished study, whose command
    is in git at a6b810d, commands/distill_study.py)."""
    d = _json(metrics / "distill_study.json")
    st = d["student"]
    lines = [_row("temperature", ["seeds", "distilled (%), mean ± std", "alone (%), mean ± std",
                                  "paired gain (pt), mean ± standard error", "verdict"]), _row("---", ["---"] * 5)]
    for p in d["pairs"]:
        lines.append(_row(f"{p['temperature']:g}", [
            " / ".join(str(s) for s in p["seeds"]), f"{p['distilled_mean']:.2f} ± {p['distilled_std']:.2f}",
            f"{p['alone_mean']:.2f} ± {p['alone_std']:.2f}", f"{p['gain']:+.3f} ± {p['gain_se']:.3f}",
            p["verdict"]]))
    return "\n".join(lines) + (
        f"\n\nTeacher: {d['teacher']}, {d['teacher_accuracy']:.2f}% on the test set. Students: conv "
        f"{st['conv_channels']} + FC {st['hidden']}, {st['epochs']} epochs, label smoothing {st['label_smoothing']:g}; "
        f"alpha {d['alpha']:g}. `{d['command']}`, {d['seconds'] / 60:.0f} min on: {_machine_line(d['machine'])}.")


def frontier_best(metrics: Path) -> str:
    """For each accuracy level, the smallest and the fastest point that reaches it (frontier.best_per_level)."""
    rows = frontier.read_rows(metrics / paths.FRONTIER_SWEEP_CSV.name)
    lines = [_row("accuracy ≥ (%)", ["smallest file", "fastest at batch 1"]), _row("---", ["---"] * 2)]
    lines += [_row(f"{b['level']:g}", [b["smallest"], b["fastest"]]) for b in frontier.best_per_level(rows)]
    return "\n".join(lines)


def compression(metrics: Path) -> str:
    """The two compressed files of the committed run, their bits per nonzero weight part by part."""
    lines = [_row("file", ["nonzero weights", "bytes (x smaller than dense)", "bits / nonzero", "positions",
                           "positions if random", "values", "other", "test accuracy (%)"]),
             _row("---", ["---"] * 8)]
    for title, report, model in (("models/compressed.bin (prune + compress)", "compress", "compressed"),
                                 ("models/combined.bin (channel + combine)", "combine", "combined")):
        r, m = _json(metrics / "stages" / f"{report}.json"), _json(metrics / f"{model}.json")
        lines.append(_row(title, [
            f"{r['nonzero_weights']:,}", f"{r['bytes']:,} ({r['times_smaller_than_dense']:.1f}x)",
            f"{r['bits_per_nonzero']:.2f}", f"{r['positions_bits_per_nonzero']:.2f}",
            f"{r['random_positions_bits_per_nonzero']:.2f}", f"{r['values_bits_per_nonzero']:.2f}",
            f"{r['other_bits_per_nonzero']:.2f}", f"{m['accuracy']:.2f}"]))
    return "\n".join(lines)


def bench(metrics: Path) -> str:
    """`make bench`'s table (metrics/bench.json) and the machine it ran on."""
    from commands.bench import table  # torchvision with it: only where a page shows the bench

    d = _json(metrics / paths.BENCH_JSON.name)
    return f"{table(d['models'])}\n\nMeasured on: {_machine_line(d['machine'])}."


def export(metrics: Path) -> str:
    """Each exported ONNX file checked against torch (metrics/stages/export.json), and the machine of the run."""
    d = _json(metrics / "stages" / "export.json")
    lines = [_row("model", ["ONNX bytes", "same top-1", "max \\|logit diff\\|", "accuracy: torch / onnxruntime",
                            "batch-1 latency (ms): torch / onnxruntime", "batch-256 img/s: torch / onnxruntime"]),
             _row("---", ["---"] * 6)]
    for name in ("dense", "channel", "student"):
        m = d[name]
        t, o = m["torch"], m["onnxruntime"]
        lines.append(_row(name, [
            f"{m['onnx_bytes']:,}", f"{m['top1_agreement']:.2%}", f"{m['max_abs_logit_diff']:.1e}",
            f"{t['accuracy']:.2f} / {o['accuracy']:.2f}", f"{t['latency_b1_ms']:.3f} / {o['latency_b1_ms']:.3f}",
            f"{t['throughput_ips']:,.0f} / {o['throughput_ips']:,.0f}"]))
    return "\n".join(lines) + f"\n\nonnxruntime {d['onnxruntime_version']}. {machine(metrics)}"


# The size goals of the smallest-file presets: (at most bytes, at least accuracy %), on the mean of the seeds.
SIZE_GOALS = {"kb2": (2000, 99.0), "kb4": (4000, 99.3), "kb8": (8000, 99.45)}


def smallest_presets(metrics: Path) -> str:
    """Each global smallest-file preset over seeds (metrics/seeds/smallest-<preset>.json): the decoded file's
    test accuracy and its bytes, against its goal."""
    lines = [_row("preset", ["goal", "test accuracy (%), mean ± std", "each seed", "bytes, mean (each)", "met",
                             "command"]), _row("---", ["---"] * 6)]
    for preset, (most, least) in SIZE_GOALS.items():
        path = metrics / paths.SEEDS_DIR.name / f"smallest-{preset}.json"
        if not path.exists():
            continue
        d = _json(path)
        size = [r["bytes"] for r in d["runs"]]
        mean_size = sum(size) / len(size)
        met = "yes" if mean_size <= most and d["mean"] >= least else "no"
        lines.append(_row(f"`{preset}`", [f"≤{most:,} B at ≥{least}%", f"{d['mean']:.2f} ± {d['std']:.2f}",
                                          " / ".join(f"{r['accuracy']:.2f}" for r in d["runs"]),
                                          f"{mean_size:,.0f} ({' / '.join(f'{b:,}' for b in size)})", met,
                                          f"`{d['command']}`"]))
    return "\n".join(lines)


FILE_PARTS = ("magic", "header", "positions", "values", "tables", "dense")


def smallest_bytes(metrics: Path) -> str:
    """What each byte of each preset's file holds (range format, bignn/compression.py): the mean over its seeds
    of every part, as `python -m commands filebytes` splits a file."""
    lines = [_row("preset", [*FILE_PARTS, "file"]), _row("---", ["---"] * (len(FILE_PARTS) + 1))]
    for preset in SIZE_GOALS:
        path = metrics / paths.SEEDS_DIR.name / f"smallest-{preset}.json"
        runs = _json(path)["runs"] if path.exists() else []
        if not runs or not all("parts" in r for r in runs):
            continue
        mean = {p: sum(r["parts"][p] for r in runs) / len(runs) for p in FILE_PARTS}
        lines.append(_row(f"`{preset}`", [*(f"{mean[p]:,.0f}" for p in FILE_PARTS),
                                          f"{sum(r['bytes'] for r in runs) / len(runs):,.0f}"]))
    return "\n".join(lines)


CLUSTER_RUNS = {"queue": "DVC queue (`--runner queue`)", "dask": "Dask LocalCluster (the default)",
                "dask-again": "the same Dask sweep again (every task finds its result pushed)"}


def cluster(metrics: Path) -> str:
    """The same sweep through DVC's queue and through Dask, side by side (metrics/cluster/<runner>.json, written
    by `commands.sweep --record`), and what each Dask task spent outside its experiment."""
    runs = {name: _json(metrics / "cluster" / f"{name}.json") for name in CLUSTER_RUNS}
    base = runs["queue"]["wall_seconds"]
    lines = [_row("runner", ["jobs at once", "experiments", "wall time", "per experiment", "vs queue"]),
             _row("---", ["---"] * 5)]
    for name, title in CLUSTER_RUNS.items():
        r = runs[name]
        lines.append(_row(title, [str(r["jobs"]), str(r["experiments"]), f"{r['wall_seconds']:.0f} s",
                                  f"{r['wall_seconds'] / r['experiments']:.1f} s", f"{r['wall_seconds'] / base:.2f}x"]))
    tasks = [t for t in runs["dask"]["tasks"] if t["status"] == "done"]
    mean = {k: sum(t["seconds"][k] for t in tasks) / len(tasks) for k in ("clone", "run", "push")}
    lines += ["", _row("per Dask task (mean of " + str(len(tasks)) + ")", ["clone + checkout", "dvc exp run --pull",
                                                                            "dvc exp push"]),
              _row("---", ["---"] * 3), _row("seconds", [f"{mean[k]:.1f}" for k in ("clone", "run", "push")])]
    machines = {_machine_line(r["machine"]) for r in runs.values()}
    lines += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in runs.values()) + ". Run on: "
              + " / ".join(sorted(machines)) + "."]
    return "\n".join(lines)


# `make exps`'s columns after Experiment and State, in the order `dvc exp show` gives them.
EXPS_METRICS = (("stages/combine", "times_smaller_than_dense"), ("stages/compress", "bits_per_nonzero"),
                ("stages/compress", "times_smaller_than_dense"), ("dense", "accuracy"), ("pruned", "accuracy"),
                ("pruned", "latency_b1_ms"), ("compressed", "accuracy"), ("channel", "accuracy"))
EXPS_PARAMS = ("prune.amount", "prune.finetune_epochs", "prune.seed", "channel.amount", "compress.bits")


def exps(metrics: Path) -> str:
    """The workspace row `make exps` shows for the committed run (metrics/ and params.yaml beside it)."""
    import yaml

    params = yaml.safe_load((metrics.parent / paths.PARAMS_FILE.name).read_text())
    titles = [f"metrics/{f}.json:{k}" for f, k in EXPS_METRICS] + list(EXPS_PARAMS)
    cells = [f"{_json(metrics / f'{f}.json')[k]:.5g}" for f, k in EXPS_METRICS]
    cells += [f"{frontier.param(params, key):g}" for key in EXPS_PARAMS]
    return "\n".join([_row("Experiment", ["State", *titles]), _row("---", ["---"] * (len(titles) + 1)),
                      _row("workspace", ["-", *cells])])


TABLES: dict[str, Callable[[Path], str]] = {
    "results": results, "layers": layers, "machine": machine, "seeds": seeds, "compression": compression,
    "bench": bench, "exps": exps, "export": export,
    "frontier_run": frontier_run, "frontier": lambda m: _frontier_table(m, None), "frontier_best": frontier_best,
    "frontier_unstructured": lambda m: _frontier_table(m, ("dense", "unstructured + compressed")),
    "frontier_structured": lambda m: _frontier_table(m, ("channel", "channel int8",
                                                          "channel + unstructured + compressed")),
    "frontier_students": lambda m: _frontier_table(m, ("student (distilled)", "student alone")),
    "frontier_smallest": lambda m: _frontier_table(m, ("dense", "student alone", "student (distilled)",
                                                        "student + unstructured + compressed",
                                                        "channel + unstructured + compressed")),
    "layers_smallest": lambda m: frontier_layers(m, ("s16", "s8")),
    "layers_kb": lambda m: frontier_layers(m, ("kb8", "kb4", "kb2")),
    "layers_sparse": lambda m: frontier_layers(m, ("p99", "p995")),
    "distill_study": distill_study, "cluster": cluster, "smallest_presets": smallest_presets,
    "smallest_bytes": smallest_bytes,
}
BLOCK = re.compile(r"(<!-- begin (\w+) -->\n)(.*?)(<!-- end \2 -->)", re.S)


def render(text: str, metrics: Path) -> str:
    """`text` with every generated block rewritten; an unknown block name is an error."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise ValueError(f"unknown generated table {name!r}; known: {sorted(TABLES)}")
        return f"{match.group(1)}{TABLES[name](metrics)}\n{match.group(4)}"

    return BLOCK.sub(fill, text)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = ap.parse_args(argv)
    stale = []
    for doc in DOCS:
        text = doc.read_text()
        new = render(text, paths.METRICS_DIR)
        if new != text:
            stale.append(str(doc))
            if not args.check:
                doc.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run `python -m commands tables`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
