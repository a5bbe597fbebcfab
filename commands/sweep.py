"""Sweep prune.amount as queued DVC experiments and collect the results (not a pipeline stage).

The queueing is DVC's own grid (one `dvc exp run --queue -S 'prune.amount=0.5,...'`); what this adds is the
table: mean and std over prune seeds per amount, in metrics/sweep.csv for the plot.

    python -m commands sweep                 # 0.5 .. 0.99 as Dask tasks on a LocalCluster, write metrics/sweep.csv
    python -m commands sweep --amounts 0.99 --seeds 0 1 2 --set prune.finetune_epochs=4
                                           # three prune seeds per amount: mean and std in the table
    python -m commands sweep --collect-only  # only rebuild the table from `dvc exp show`
    python -m commands sweep --scheduler tcp://HOST:8786   # on a Dask cluster (commands/cluster.py)
    python -m commands sweep --runner queue  # DVC's own queue on this machine instead

Each experiment reuses the trained dense model from the DVC cache and reruns prune, compress and evaluate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from bignn import paths
from bignn.config import load_params
from bignn.io import write_csv, write_json
from bignn.metrics import machine_metrics
from bignn.runtime import cli
from commands import cluster
from commands.cluster import Experiment, check_cores

AMOUNTS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
SWEEP_CSV = paths.SWEEP_CSV


def queue_command(amounts: Sequence[float], seeds: Sequence[int] | None = None, sets: Sequence[str] = (),
                  name: str = "sweep") -> list[str]:
    """One `dvc exp run --queue` for the whole grid, in DVC's own sweep syntax: `-S 'prune.amount=0.5,0.9'`
    queues one experiment per value (and per prune seed), named <name>-1, <name>-2, ...; `sets` are more
    `-S key=value` overrides, the same for every experiment."""
    grid = ["-S", "prune.amount=" + ",".join(f"{a:g}" for a in amounts)]
    if seeds is not None:
        grid += ["-S", "prune.seed=" + ",".join(str(s) for s in seeds)]
    return ["dvc", "exp", "run", "--queue", "-n", name, *grid, *[arg for kv in sets for arg in ("-S", kv)]]


def grid(amounts: Sequence[float], seeds: Sequence[int] | None = None, sets: Sequence[str] = (),
         ) -> list[Experiment]:
    """The same grid as queue_command, one experiment each for the Dask runner, named
    sweep-<amount>[-s<seed>]-<digest of every override> (cluster.named)."""
    exps = []
    for a in amounts:
        for s in seeds if seeds is not None else [None]:
            over = (f"prune.amount={a:g}", *([] if s is None else [f"prune.seed={s}"]), *sets)
            exps.append(Experiment(cluster.named(f"sweep-{a:g}" + ("" if s is None else f"-s{s}"), over), over))
    return exps


def remove_others(prefix: str | tuple[str, ...], keep: Sequence[str] = ()) -> None:
    """`dvc exp remove` this workspace's experiments whose names start with `prefix`, except `keep`."""
    old = [n for n, _ in experiments(json.loads(dvc("exp", "show", "--json")))
           if n.startswith(prefix) and n not in keep]
    if old:
        dvc("exp", "remove", *old, check=False)


def run_dask(exps: Sequence[Experiment], args: argparse.Namespace, prefix: str | tuple[str, ...],
             threads: int) -> list[cluster.Result]:
    """The experiments on the cluster the flags name (commands/cluster.py); this sweep's earlier experiments of
    other names removed first (once the remotes and the scheduler answered), so the table holds only this grid."""
    return cluster.run_on_cluster(exps, cluster=args.cluster, scheduler=args.scheduler, jobs=args.jobs,
                                  threads=threads, git_remote=args.git_remote, dvc_remote=args.dvc_remote,
                                  checked=lambda: remove_others(prefix, [e.name for e in exps]))


def record(path: str, argv: Sequence[str], runner: str, jobs: int, experiments: int, seconds: float,
           results: Sequence[cluster.Result]) -> None:
    """How a run went, for docs/cluster.md: the runner, jobs at once, wall time, and each Dask task's phases."""
    params = load_params()
    write_json(path, {"command": " ".join(["python -m commands sweep", *argv]), "runner": runner, "jobs": jobs,
                      "experiments": experiments, "wall_seconds": round(seconds, 1),
                      "tasks": [dataclasses.asdict(r) for r in results],
                      "machine": machine_metrics(params.threads, params.kernels)})


def dvc(*args: str, check: bool = True) -> str:
    """`dvc ARGS`, its stdout; a failure raises with the end of its stderr (check=False: ignored)."""
    res = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {res.stderr.strip()[-1000:]}")
    return res.stdout


def start_queue(jobs: int, cwd: str | None = None) -> None:
    """`dvc queue start`, with its output not captured: the workers it leaves running inherit the command's
    stdout and stderr, so reading them to the end (subprocess's capture_output) waits until the last worker
    exits, which an idle worker may never do."""
    res = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"dvc queue start -j {jobs} failed (exit {res.returncode}); see `dvc queue logs`")


def run_queue(cmds: Sequence[list[str]], jobs: int = 1, prefix: str | tuple[str, ...] = "sweep-") -> None:
    """Queue each command, run the queue with `jobs` workers and wait for it to empty; first remove the
    experiments whose names start with `prefix` (one or several)."""
    # Removing the earlier sweep's experiments first: DVC numbers the new ones from 1 again (and refuses a name
    # twice), and the table must hold only this sweep's.
    remove_others(prefix)
    for cmd in cmds:
        subprocess.run(cmd, check=True)
    start_queue(jobs)
    wait_for_queue(jobs)


def wait_for_queue(jobs: int, poll_s: float = 10.0) -> None:
    """Until nothing is queued or running; raises if an experiment failed."""
    while True:
        time.sleep(poll_s)
        status = dvc("queue", "status")
        if not any(word in status for word in ("Queued", "Running")):
            break
        if "Running" not in status and "Worker status: 0 active, 0 idle" in status:
            # Every worker left with experiments still queued: a worker obeys a shutdown left in DVC's
            # file broker by an earlier worker of the same name (seen here: one experiment ran, then the
            # worker quit and eight stayed queued). Start another.
            start_queue(jobs)
    if "Failed" in status:
        raise RuntimeError(f"some experiments failed (see `dvc queue logs <name>`):\n{status}")


def experiments(data: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, data) of every finished experiment in `dvc exp show --json` output."""
    for baseline in data:
        for exp in baseline.get("experiments") or []:
            # A queued or running experiment is listed too, with the baseline's metrics: not a result.
            if (exp.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue
            for rev in exp.get("revs", []):
                if rev.get("name") and rev.get("data"):
                    yield rev["name"], rev["data"]


def _rows_from_exp_show(data: list[dict[str, Any]], dense_accuracy: float) -> list[dict[str, Any]]:
    """One row per amount; with several prune seeds, accuracy is their mean and accuracy_std their spread."""
    runs: dict[float, list[dict[str, Any]]] = {}
    for name, d in experiments(data):
        if not name.startswith("sweep-"):
            continue
        pruned = d["metrics"][paths.model_metrics("pruned").as_posix()]["data"]
        prune_data = d["metrics"].get(paths.PRUNE_METRICS.as_posix(), {}).get("data", {})
        seconds = prune_data.get("stage_seconds", float("nan"))
        amount = d["params"]["params.yaml"]["data"]["prune"]["amount"]
        runs.setdefault(amount, []).append({**pruned, "seconds": seconds})
    rows = []
    for amount in sorted(runs):
        acc = [r["accuracy"] for r in runs[amount]]
        mean, std = statistics.mean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0
        rows.append({"amount": amount, "sparsity": round(runs[amount][0]["sparsity"], 5),
                     "accuracy": round(mean, 2), "accuracy_std": round(std, 3), "seeds": len(acc),
                     "drop_vs_dense": round(dense_accuracy - mean, 2),
                     "params_nonzero": runs[amount][0]["params_nonzero"],
                     "prune_seconds": round(statistics.mean(r["seconds"] for r in runs[amount]), 1)})
    return rows


def collect() -> list[dict[str, Any]]:
    dense = json.loads((paths.METRICS_DIR / "dense.json").read_text())
    rows = _rows_from_exp_show(json.loads(dvc("exp", "show", "--json")), dense["accuracy"])
    if not rows:
        raise RuntimeError("no sweep-* experiments found in `dvc exp show`")
    write_csv(SWEEP_CSV, rows)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amounts", type=float, nargs="+", default=list(AMOUNTS))
    ap.add_argument("--seeds", type=int, nargs="+", help="prune seeds per amount (prune.seed; no retraining)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more param override for every experiment, e.g. prune.finetune_epochs=4")
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--record", metavar="JSON", help="write the run's wall time and each task's phases there")
    cluster.add_arguments(ap)
    args = ap.parse_args(argv)
    results: list[cluster.Result] = []
    # Each experiment's threads: params.yaml's, or a --set threads=N for all of them.
    threads = int(dict(kv.partition("=")[::2] for kv in args.set).get("threads", load_params().threads))
    cores = os.cpu_count() or 1
    jobs = args.jobs or (1 if args.runner == "queue" else cluster.local_workers(threads, cores))
    t0 = time.perf_counter()
    if args.collect_only:
        pass
    elif args.runner == "queue":
        check_cores(jobs, threads, cores)
        run_queue([queue_command(args.amounts, args.seeds, args.set)], jobs)
    else:
        results = run_dask(grid(args.amounts, args.seeds, args.set), args, "sweep-", threads)
    seconds = time.perf_counter() - t0
    print(markdown(collect()))
    if args.record:
        record(args.record, sys.argv[1:] if argv is None else argv, args.runner, jobs,
               len(args.amounts) * len(args.seeds or [0]), seconds, results)
    if cluster.failures(results):
        raise ValueError(f"failed experiments: {cluster.failures(results)}")


if __name__ == "__main__":
    cli(main)
