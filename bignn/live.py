"""Per-epoch logs through DVCLive, DVC's own logger: `dvc exp show` shows a running experiment's latest epoch
and `dvc plots` draws the curves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from bignn import paths

# DVCLive's own default is ./dvclive; here the logs sit with the other metrics (paths.live_dir).

EpochLogger = Callable[[dict[str, float]], None]


@contextlib.contextmanager
def epoch_logger(name: str) -> Iterator[EpochLogger]:
    """A function that logs one of fit()'s epoch rows to metrics/live/<name>/: metrics.json holds the latest epoch
    (a `metrics:` entry in dvc.yaml), plots/metrics/<key>.tsv one line per epoch (a cached output the top-level
    plots draw), for every key but the seconds."""
    from dvclive import Live  # imports dvc: only where a stage writes logs, not in every run() a test calls

    # dvcyaml=None: dvc.yaml declares these files itself; save_dvc_exp: DVC, not the logger, makes experiments.
    with Live(dir=str(paths.live_dir(name)), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        def log(row: dict[str, float]) -> None:
            live.step = int(row["epoch"])  # the x axis is the epoch, 1-based, not DVCLive's 0-based step count
            for key, value in row.items():
                if key != "epoch":
                    # The TSVs are cached outputs: only the deterministic columns, so a rerun gives the same
                    # bytes (`dvc diff` empty); an epoch's seconds stay in metrics.json.
                    live.log_metric(key, value, plot=key != "seconds")
            live.next_step()

        yield log
