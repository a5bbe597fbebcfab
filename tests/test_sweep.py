"""The sweep helper: the DVC commands it queues and the table it builds from `dvc exp show --json`."""

from __future__ import annotations

import pytest

from commands import sweep


def test_one_grid_command_queues_every_amount() -> None:
    assert sweep.queue_command([0.5, 0.95]) == [
        "dvc", "exp", "run", "--queue", "-n", "sweep", "-S", "prune.amount=0.5,0.95"]
    assert sweep.queue_command(sweep.AMOUNTS)[-1] == "prune.amount=0.5,0.8,0.9,0.95,0.98,0.99"


def test_seeds_and_sets_join_the_grid() -> None:
    assert sweep.queue_command([0.99], seeds=[0, 2], sets=["prune.finetune_epochs=4"], name="q") == [
        "dvc", "exp", "run", "--queue", "-n", "q", "-S", "prune.amount=0.99", "-S", "prune.seed=0,2",
        "-S", "prune.finetune_epochs=4"]


def test_rows_average_the_seeds_of_one_amount() -> None:
    shown = [{"rev": "abc", "experiments": [{"revs": [_rev(f"sweep-{i + 1}", 0.99, acc, 42910)]}
                                            for i, acc in enumerate([99.29, 99.24, 99.31])]}]
    (row,) = sweep._rows_from_exp_show(shown, dense_accuracy=99.58)
    assert row["seeds"] == 3 and row["accuracy"] == 99.28 and row["drop_vs_dense"] == 0.3
    assert row["accuracy_std"] == pytest.approx(0.036, abs=0.001)


def _rev(name: str, amount: float, accuracy: float, nonzero: int) -> dict:
    return {"name": name, "data": {
        "params": {"params.yaml": {"data": {"prune": {"amount": amount}}}},
        "metrics": {"metrics/pruned.json": {"data": {"sparsity": amount, "accuracy": accuracy,
                                                     "params_nonzero": nonzero}},
                    "metrics/stages/prune.json": {"data": {"stage_seconds": 80.04}}}}}


def test_rows_keep_sweep_experiments_sorted_with_drop_vs_dense() -> None:
    shown = [{"rev": "workspace", "experiments": None},
             {"rev": "abc", "experiments": [{"revs": [_rev("sweep-2", 0.98, 99.32, 88026)]},
                                            {"revs": [_rev("sweep-3", 0.9, 99.48, 1)],
                                             "executor": {"state": "running"}},
                                            {"revs": [_rev("sweep-4", 0.8, 99.48, 1)],
                                             "executor": {"state": "success"}},
                                            {"revs": [_rev("other-exp", 0.7, 99.0, 1)]},
                                            {"revs": [_rev("sweep-1", 0.5, 99.55, 2146650)]}]}]
    rows = sweep._rows_from_exp_show(shown, dense_accuracy=99.55)
    # other experiments and those still running (they carry the baseline's metrics) are left out
    assert [r["amount"] for r in rows] == [0.5, 0.8, 0.98]
    assert rows[2] == {"amount": 0.98, "sparsity": 0.98, "accuracy": 99.32, "accuracy_std": 0.0, "seeds": 1,
                       "drop_vs_dense": 0.23, "params_nonzero": 88026, "prune_seconds": 80.0}
    assert sweep.markdown(rows).splitlines()[0].startswith("| amount | sparsity | accuracy")


def test_jobs_times_threads_may_not_exceed_the_cores() -> None:
    sweep.check_cores(jobs=1, threads=2, cores=2)
    sweep.check_cores(jobs=2, threads=1, cores=2)
    with pytest.raises(ValueError, match=r"--jobs 2 x threads 2 .* 2 cores .* use --jobs 1"):
        sweep.check_cores(jobs=2, threads=2, cores=2)
    with pytest.raises(ValueError, match="--jobs 0"):
        sweep.check_cores(jobs=0, threads=1, cores=4)


def test_waiting_restarts_a_worker_that_left_a_queue_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = iter(["a  q-1  Running\nq-2  Queued\n\nWorker status: 1 active, 0 idle",
                     "a  q-1  Success\nq-2  Queued\n\nWorker status: 0 active, 0 idle",
                     "a  q-1  Success\nq-2  Running\n\nWorker status: 1 active, 0 idle",
                     "a  q-1  Success\nq-2  Success\n\nWorker status: 0 active, 0 idle"])
    started: list[int] = []
    monkeypatch.setattr(sweep, "dvc", lambda *args, **kw: next(statuses))
    monkeypatch.setattr(sweep, "start_queue", started.append)
    sweep.wait_for_queue(jobs=1, poll_s=0)
    assert started == [1]
    monkeypatch.setattr(sweep, "dvc", lambda *args, **kw: "q-1  Failed\n\nWorker status: 0 active, 0 idle")
    with pytest.raises(RuntimeError, match="some experiments failed"):
        sweep.wait_for_queue(jobs=1, poll_s=0)
