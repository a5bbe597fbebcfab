"""Experiments as Dask tasks (commands/cluster.py) on the tiny pipeline: a LocalCluster of two workers over
loopback, a bare git repo and a local-directory DVC remote standing in for a lab's servers. A copy of its own
of the session's tiny repo, so that pytest-xdist runs this module beside the other end-to-end modules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import psutil
import pytest

from commands import cluster, sweep
from commands.cluster import Experiment, Result
from tests.dvc_repo import sh, with_remotes

# Two good sweep points and a bad one: three tasks for two workers, so one waits for a free worker.
GOOD = (0.3, 0.9)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return with_remotes(tiny_template[0], tmp_path_factory.mktemp("cluster"))


def _kill_a_busy_worker(client: object, killed: list[str], stop: threading.Event) -> None:
    """Once a task has run a few seconds (its `dvc exp run` under way), SIGKILL the worker process running it;
    `killed` gets its pid and its own directory, which holds the task's clone."""
    while not stop.is_set():
        busy = [addr for addr, keys in client.processing().items() if keys]  # type: ignore[attr-defined]
        if busy:
            time.sleep(4)
            pids = client.run(os.getpid, workers=busy[:1])  # type: ignore[attr-defined]
            where = client.run(_local_directory, workers=busy[:1])  # type: ignore[attr-defined]
            pid = next(iter(pids.values()))
            killed += [f"{pid}", next(iter(where.values()))]
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def _local_directory(dask_worker: object) -> str:
    return dask_worker.local_directory  # type: ignore[attr-defined]


def test_three_experiments_on_two_workers_one_killed_one_bad(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweep points and one bad -S on a 2-worker LocalCluster, one worker killed mid-task: every result
    arrives once, each good experiment is pushed once, the bad one is one line naming its key, the client's
    `dvc exp show` lists the good ones with their metrics, and no task's clone is left on disk."""
    monkeypatch.chdir(repo)
    # The workers' temp dir and their own directories in it (the nannies take dask's setting, the worker
    # processes, started after this, the variable): where a task's clone could stay.
    tmp = repo.parent / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setitem(dask.config.config, "temporary-directory", str(tmp))
    exps = [*sweep.grid(GOOD), Experiment("sweep-bad", ("prune.amount=1.5",))]
    remotes = cluster.resolve_remotes(None, None, local_ok=False)
    assert not remotes.local and remotes.git.endswith("origin.git") and remotes.dvc.endswith("dvc-store")
    commit = cluster.check_base(remotes)
    client = cluster.open_client("local", None, cluster.local_workers(1, 2, jobs=2), threads=1)
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed, stop))
    killer.start()
    try:
        results = cluster.run_experiments(exps, client, remotes, commit)
    finally:
        stop.set()
        killer.join()
        cluster.close_client(client)
    assert killed, "no worker was killed: the test did not test the rerun"
    assert [r.name for r in results] == [e.name for e in exps]
    by_name: dict[str, Result] = {r.name: r for r in results}
    assert by_name["sweep-bad"].status == "failed"
    assert by_name["sweep-bad"].error.startswith("prune.amount must be a number in [0, 1), got 1.5")
    assert all(by_name[e.name].status == "done" for e in exps[:len(GOOD)]), results
    # No result came from the killed process; its task ran again elsewhere.
    assert not any(r.worker.endswith(f":{killed[0]}") for r in results)
    refs = sh(repo, "git", "ls-remote", remotes.git, "refs/exps/*").split()
    assert sorted(ref.rpartition("/")[2] for ref in refs if ref.startswith("refs/exps/")) == sorted(
        e.name for e in exps[:len(GOOD)])
    # The client pulled them: `dvc exp show` has each with its own metrics.
    shown = dict(sweep.experiments(json.loads(sh(repo, "dvc", "exp", "show", "--json"))))
    for exp, amount in zip(exps[:len(GOOD)], GOOD, strict=True):
        pruned = shown[exp.name]["metrics"]["metrics/pruned.json"]["data"]
        assert pruned["sparsity"] == pytest.approx(amount, abs=1e-3)
        assert shown[exp.name]["params"]["params.yaml"]["data"]["prune"]["amount"] == amount
    # The killed task's clone went with its worker's directory (the worker started after it removed that), and
    # no task left a clone anywhere in the workers' temp dir.
    assert Path(killed[1]).is_relative_to(tmp) and not Path(killed[1]).exists()
    assert not list(tmp.rglob(f"{cluster.WORKDIR_PREFIX}*"))
    # No `dvc exp run` of the killed worker is left running (it died with its worker).
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if "exp" in (p.info["cmdline"] or [])
            and "run" in (p.info["cmdline"] or []) and any("sweep-" in a for a in p.info["cmdline"] or [])]
    assert not left, left


def test_experiments_do_not_inherit_the_nannys_thread_and_malloc_settings(monkeypatch: pytest.MonkeyPatch,
                                                                         ) -> None:
    for key in cluster.NANNY_ENV:
        monkeypatch.setenv(key, "1")
    env = cluster._worker_env()
    assert not set(cluster.NANNY_ENV) & set(env)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_a_name_stands_for_its_overrides() -> None:
    """A pushed name is reused as that experiment's result: other overrides must give another name."""
    a, b, c = sweep.grid([0.5]), sweep.grid([0.5], sets=["prune.seed=1"]), sweep.grid([0.5], [0])
    assert a == sweep.grid([0.5]) and len({a[0].name, b[0].name, c[0].name}) == 3
    assert a[0].name.startswith("sweep-0.5-") and c[0].name.startswith("sweep-0.5-s0-")


def test_a_forced_experiment_pulls_its_targets_dependencies_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvc exp run -f` skips the pull of missing dependencies that `--pull` does otherwise (DVC's stage/run.py):
    in a fresh clone the forced target found no MNIST and no models. The task pulls them before it runs."""
    ran: list[list[str]] = []
    monkeypatch.setattr(cluster, "pushed", lambda *args: False)
    monkeypatch.setattr(cluster, "_clone", lambda *args: None)
    monkeypatch.setattr(cluster, "_run", lambda cmd, **kw: ran.append(list(cmd)) or subprocess.CompletedProcess(
        cmd, 0, "", ""))
    remotes = cluster.Remotes("origin.git", "store")
    for force in (True, False):
        ran.clear()
        exp = Experiment("frontier-default-0", ("prune.seed=0",), "evaluate", force=force)
        assert cluster.run_experiment(exp, "abc1234", remotes).status == "done"
        dvc = [cmd[cmd.index("dvc") + 1:] for cmd in ran if "dvc" in cmd]
        run = next(cmd for cmd in dvc if cmd[:2] == ["exp", "run"])
        if force:
            assert dvc[0] == ["pull", "--quiet", "--allow-missing", "--with-deps", "evaluate"]
            assert run[-3:] == ["-f", "-s", "evaluate"]
        else:
            assert not any(cmd[0] == "pull" for cmd in dvc) and run[-2:] == ["prune.seed=0", "evaluate"]


def test_a_task_run_again_returns_the_pushed_result(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same experiment on the same commit (a worker that died after its push): no second run, no second
    push."""
    monkeypatch.chdir(repo)
    remotes = cluster.resolve_remotes(None, None, local_ok=False)
    commit = sh(repo, "git", "rev-parse", "HEAD").strip()
    again = cluster.run_experiment(sweep.grid(GOOD[:1])[0], commit, remotes)
    assert again.status == "reused" and again.seconds == {}
