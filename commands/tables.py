"""README's results tables, written from the committed metrics files so no number drifts (not a stage).

    python -m commands.tables           # rewrite every generated table in README.md
    python -m commands.tables --check   # exit 1 if one differs from what metrics/ gives (the tests run this)

A generated table sits between `<!-- begin NAME -->` and `<!-- end NAME -->`; the text around it is prose.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stages.common import paths

DOCS = [Path("README.md")]
# metrics/<file>.json -> column title, in the order the pipeline makes them
MODELS = {"dense": "dense", "pruned": "pruned", "compressed": "compressed", "channel": "channel",
          "channel_int8": "channel int8", "combined": "combined", "student": "student (distilled)",
          "student_scratch": "student alone"}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _row(title: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([title, *cells]) + " |"


def results(metrics: Path) -> str:
    """One column per model, one row per measurement: `dvc metrics show` as one table."""
    m = {name: _json(metrics / f"{name}.json") for name in MODELS}
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
    lines = [_row("metric", list(MODELS.values())), _row("---", ["---"] * len(MODELS))]
    lines += [_row(title, [cell(m[name]) for name in MODELS]) for title, cell in rows]
    return "\n".join(lines)


def layers(metrics: Path) -> str:
    """The pruned model's nonzero weights per layer (metrics/layer_sparsity.csv)."""
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
    """Each model's accuracy over seeds (metrics/seeds/<model>.json, `python -m commands.seeds --save`)."""
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


TABLES: dict[str, Callable[[Path], str]] = {"results": results, "layers": layers, "machine": machine,
                                            "seeds": seeds}
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
        print(f"out of date: {', '.join(stale)}; run `python -m commands.tables`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
