"""Is a change more than seed noise? One model's test accuracy over several seeds, mean ± std (not a stage).

    python -m commands.seeds channel --seeds 0 1 2
    python -m commands.seeds pruned --seeds 0 1 2 -S prune.dropout=false -S prune.augment=0.5
    python -m commands.seeds pruned -S prune=p99

Runs the stage's own run() once per seed, in this process, on the params `dvc exp run` would compose with the
same -S overrides (commands/params.py; params.yaml itself where there is no conf/), and the
models the pipeline left in models/ (a retrained dense model for `dense`, else the committed dense model and,
for `combined`, the committed channel model), and scores each result on the test set. The compressed forms
(`compressed`, `combined`) are scored as evaluate scores them: decoded from their bytes. Writes no model file;
`--save` writes the runs to metrics/seeds/<model>.json, from which README's seed table is generated
(`python -m commands.tables`). On MNIST one seed moves accuracy by about 0.1 pt, so a claim below ~0.2 pt
needs three seeds or more.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from commands.params import compose
from stages import channel, combine, distill, prune, train
from stages.common import paths
from stages.common.config import Params, load_params, params_from_dict
from stages.common.data import load_split
from stages.common.forms import load_model
from stages.common.io import load_checkpoint, write_json
from stages.common.metrics import machine_metrics
from stages.common.runtime import cli
from stages.common.training import score
from stages.methods.compression import compress_model


def _decoded(data: bytes) -> nn.Module:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bin"
        path.write_bytes(data)
        return load_model(path)


def _compressed(params: Params) -> tuple[nn.Module, int]:
    model = prune.run(params)[0]
    data = compress_model(params, model, paths.DENSE_MODEL.stat().st_size, 1)[0]
    return _decoded(data), len(data)


def _combined(params: Params) -> tuple[nn.Module, int]:
    data = combine.run(params)[0]
    return _decoded(data), len(data)


def _student(params: Params, distilled: bool) -> nn.Module:
    teacher = load_checkpoint(paths.DENSE_MODEL)[0] if distilled else None
    return distill.train_student(params, teacher)[0]


# model name -> (the params key that seeds it, what trains it). The compressed forms also give their file's
# size in bytes, the number a size target is about.
MODELS: dict[str, tuple[str, Callable[[Params], nn.Module | tuple[nn.Module, int]]]] = {
    "dense": ("seed", lambda p: train.run(p)[0]),
    "pruned": ("prune.seed", lambda p: prune.run(p)[0]),
    "compressed": ("prune.seed", _compressed),
    "channel": ("channel.seed", lambda p: channel.run(p)[0]),
    "combined": ("combine.seed", _combined),
    # models/student.pth: distilled only where distill.alpha > 0 (opt-in), else the student alone.
    "student": ("distill.seed", lambda p: _student(p, distilled=p.distill.alpha > 0)),
    "student_scratch": ("distill.seed", lambda p: _student(p, distilled=False)),
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


def run(model: str, seeds: Sequence[int], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per seed: the seed, the test accuracy (%) and the seconds it took."""
    if model not in MODELS:
        raise ValueError(f"model: expected one of {sorted(MODELS)}, got {model!r}")
    key, make = MODELS[model]
    rows = []
    for seed in seeds:
        params = params_from_dict(with_overrides(raw, [f"{key}={seed}"]))
        t0 = time.perf_counter()
        made = make(params)
        trained, size = made if isinstance(made, tuple) else (made, None)
        test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
        rows.append({"seed": seed, "accuracy": score(trained, test)["accuracy"],
                     "seconds": time.perf_counter() - t0, **({} if size is None else {"bytes": size})})
        in_bytes = "" if size is None else f", {size:,} B"
        print(f"{model} {key}={seed}: {rows[-1]['accuracy']:.2f}%{in_bytes} ({rows[-1]['seconds']:.0f} s)",
              flush=True)
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
    ap.add_argument("--save", action="store_true", help=f"write the runs to {paths.SEEDS_DIR}/<model>.json")
    args = ap.parse_args(argv)
    raw = base_params(args.overrides)
    params = params_from_dict(raw)
    rows = run(args.model, args.seeds, raw)
    print(f"{args.model} {' '.join(args.overrides)}: {summary(rows)}")
    if args.save:
        mean, std = mean_std(rows)
        write_json(paths.SEEDS_DIR / f"{args.model}.json", {
            "model": args.model, "overrides": args.overrides, "runs": rows, "mean": mean, "std": std,
            "command": " ".join(["python -m commands.seeds", args.model, "--seeds", *map(str, args.seeds),
                                 *[f"-S {o}" for o in args.overrides], "--save"]),
            "machine": machine_metrics(params.threads, params.kernels)})


if __name__ == "__main__":
    cli(main)
