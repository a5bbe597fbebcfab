"""DVC experiments as Dask tasks: the runner behind `commands.sweep` and `commands.frontier` (not a stage).

`dvc queue` runs experiments one host at a time. Here each experiment is one Dask task: the worker clones the
git remote at the experiment's base commit, runs `dvc exp run --pull --allow-missing -S ...` against the
shared DVC remote (the dense model and the other unchanged outputs come from there, nothing is retrained) and
`dvc exp push`es the result; the client then `dvc exp pull`s it and builds its tables from `dvc exp show` as
before. Dask does the scheduling, the retries and the dashboard:

- a LocalCluster on this machine (the default: one worker per `threads` cores), loopback only;
- `--scheduler tcp://HOST:8786`: an existing cluster (`dask scheduler`, `dask worker HOST:8786` on each node,
  each worker in an environment that has requirements.txt installed and reaches both remotes);
- `--cluster slurm` or `--cluster pbs`: dask-jobqueue starts the workers as batch jobs (an optional extra:
  `pip install dask-jobqueue==0.9.0`).

The remotes: `--git-remote` (default origin) and the repo's default DVC remote (`dvc remote add -d`), or
`--dvc-remote NAME`. The base commit must be on the git remote (`git push` first); the client `dvc push`es
its outputs before the first task starts. On a LocalCluster without remotes the workers use this repo itself
and its DVC cache (the same disk), so a sweep needs no set-up on one machine.

An experiment is pushed only when its run succeeded, and a task first looks for its experiment on the git
remote: a task run again (its worker died after the push, or the same sweep is started twice on the same
commit) returns the pushed result instead of a second one. A failed experiment (a bad -S value) is a result,
not an error: it is not retried, the others finish, and its one-line cause is reported at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTERS = ("local", "slurm", "pbs")
# An infrastructure failure (a clone or a push that did not go through) is retried this many times, on any
# worker; a worker that dies mid-task has its task rerun by the scheduler (distributed's allowed-failures).
RETRIES = 2
WORKDIR_PREFIX = "bignn-exp-"


class ClusterError(OSError):
    """A scheduler, clone, pull or push that failed for a reason outside the experiment: worth a retry elsewhere
    (an OSError: the command line prints it as one line)."""


@dataclass(frozen=True)
class Experiment:
    """One `dvc exp run`: its name, its `-S key=value` overrides, and the stage it runs up to ("" = all); force:
    run that stage again even where DVC finds it up to date (an experiment whose overrides are the commit's own
    params would get the commit's outputs, its timings measured wherever dvc.lock was committed).

    A name stands for its overrides on a commit: a task that finds its name pushed already returns that result
    (run_experiment), so two experiments with other overrides must never share a name (see named)."""

    name: str
    sets: tuple[str, ...] = ()
    target: str = ""
    force: bool = False

    def target_args(self) -> list[str]:
        """What `dvc exp run` takes after the overrides: the target, `-f -s` before it where forced (the target
        alone runs again; everything upstream is the commit's, as the overrides change nothing)."""
        if self.force and not self.target:
            raise ValueError(f"{self.name}: force needs a target stage")
        return ["-f", "-s", self.target] if self.force else [self.target] if self.target else []


@dataclass(frozen=True)
class Remotes:
    """Where workers clone from and push to (a git URL or path) and the DVC remote's URL; local: this repo
    itself and its cache, for a LocalCluster on this machine."""

    git: str
    dvc: str
    local: bool = False
    git_name: str = ""  # the client's name for the git remote ("" when local)
    dvc_name: str = ""  # the client's name for the DVC remote


@dataclass
class Result:
    name: str
    status: str  # "done", "reused" (found pushed already) or "failed"
    error: str = ""
    worker: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    output: str = ""  # run_module's stdout


def named(prefix: str, sets: Sequence[str]) -> str:
    """prefix plus a digest of the overrides: the same name exactly when the overrides are the same."""
    return f"{prefix}-{hashlib.sha1(chr(0).join(sets).encode()).hexdigest()[:7]}"


def exp_ref(commit: str, name: str) -> str:
    """The git ref DVC keeps an experiment of `commit` under."""
    return f"refs/exps/{commit[:2]}/{commit[2:]}/{name}"


def _run(cmd: Sequence[str], cwd: str | Path | None = None, env: dict[str, str] | None = None,
         timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """A child that dies with the worker thread that started it (Linux): a worker killed mid-experiment
    leaves no `dvc exp run` behind to push a result the rerun task will push again."""
    # Looked up before the fork: the child only makes the one system call (no loader, no Python allocation).
    prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None

    def die_with_parent() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, preexec_fn=die_with_parent if prctl else None)


def _tail(res: subprocess.CompletedProcess[str]) -> str:
    return " ".join((res.stderr or res.stdout).strip().splitlines()[-3:])[-500:]


def pushed(git_url: str, commit: str, name: str, env: dict[str, str] | None = None) -> bool:
    res = _run(["git", "ls-remote", git_url, exp_ref(commit, name)], env=env, timeout=120)
    if res.returncode != 0:
        raise ClusterError(f"git remote {git_url} is unreachable: {_tail(res)}")
    return bool(res.stdout.strip())


def stage_error(output: str) -> str:
    """The one line a stage printed for a bad param or file ("error: prune.amount must be ..."), else DVC's."""
    lines = [line.strip() for line in output.splitlines()]
    for line in lines:
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no output")


# What Dask's nanny puts into a worker's environment for its own tasks (distributed.nanny.pre-spawn-environ):
# inherited by an experiment's stages, they ran prune and evaluate 1.5x slower here (57 s instead of 35 s);
# the stages set their own thread count from params.yaml.
NANNY_ENV = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_env() -> dict[str, str]:
    """This worker's Python first on PATH (dvc.yaml's `python -m stages ...` and `dvc` itself), a git identity
    where the worker has none (`dvc exp run` commits the experiment), and none of the nanny's settings."""
    env = {k: v for k, v in os.environ.items() if k not in NANNY_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env.setdefault(key, "bignn worker")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env.setdefault(key, "bignn-worker@localhost")
    return env


def _workdir(name: str) -> str:
    """A new folder for one task's clone, inside the running Dask worker's own directory: the worker removes
    that when it stops, and a worker killed mid-task (a pre-empted batch job, the OOM killer) leaves it to the
    next worker started beside it, which removes it (distributed's WorkSpace: a dead process holds no lock). A
    `finally` never runs in a killed process, so a clone in the shared temp dir would stay. Outside a worker
    (a task called directly), the system's temp dir."""
    from distributed import get_worker

    try:
        parent = get_worker().local_directory
    except ValueError:  # not in a Dask worker
        parent = None
    return tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{name}-", dir=parent)


def run_experiment(exp: Experiment, commit: str, remotes: Remotes) -> Result:
    """The Dask task: clone at `commit`, run the experiment against the shared DVC remote, push it."""
    env = _worker_env()
    where = f"{socket.gethostname()}:{os.getpid()}"
    if pushed(remotes.git, commit, exp.name, env):
        return Result(exp.name, "reused", worker=where)
    seconds: dict[str, float] = {}
    work = _workdir(exp.name)
    try:
        t0 = time.perf_counter()
        _clone(work, commit, remotes, env)
        if exp.force:  # `dvc exp run -f` pulls no missing dependency: the target's come first
            _must(_run([sys.executable, "-m", "dvc", "pull", "--quiet", "--allow-missing", "--with-deps", exp.target],
                       cwd=work, env=env), f"dvc pull {exp.target}")
        seconds["clone"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sets = [arg for kv in exp.sets for arg in ("-S", kv)]
        res = _run([sys.executable, "-m", "dvc", "exp", "run", "--pull", "--allow-missing", "-n", exp.name, *sets,
                    *exp.target_args()], cwd=work, env=env)
        seconds["run"] = time.perf_counter() - t0
        if res.returncode != 0:
            return Result(exp.name, "failed", stage_error(res.stdout + "\n" + res.stderr), where, seconds)
        t0 = time.perf_counter()
        _must(_run([sys.executable, "-m", "dvc", "exp", "push", "-r", "shared", remotes.git, exp.name], cwd=work,
                   env=env), f"dvc exp push {exp.name}")
        seconds["push"] = time.perf_counter() - t0
        return Result(exp.name, "done", worker=where, seconds=seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clone(work: str, commit: str, remotes: Remotes, env: dict[str, str]) -> None:
    """`commit` of the git remote checked out in `work`, pointed at the shared DVC remote."""
    _must(_run(["git", "clone", "--quiet", "--no-checkout", remotes.git, work], env=env), "git clone")
    _must(_run(["git", "checkout", "--quiet", commit], cwd=work, env=env), f"git checkout {commit[:7]}")
    _must(_run([sys.executable, "-m", "dvc", "remote", "add", "--local", "--force", "-d", "shared", remotes.dvc],
               cwd=work, env=env), "dvc remote add")


def run_module(name: str, args: Sequence[str], commit: str, remotes: Remotes) -> Result:
    """The Dask task for work that is not a DVC experiment (commands.seeds' runs): a clone at `commit` with
    the commit's DVC outputs pulled, then `python -m <args>` in it; its stdout comes back in Result.output. A
    failing command is a failed Result (one line), not retried."""
    env = _worker_env()
    work = _workdir(name)
    try:
        t0 = time.perf_counter()
        _clone(work, commit, remotes, env)
        _must(_run([sys.executable, "-m", "dvc", "pull", "--quiet"], cwd=work, env=env), "dvc pull")
        seconds = {"clone": time.perf_counter() - t0}
        t0 = time.perf_counter()
        res = _run([sys.executable, "-m", *args], cwd=work, env=env)
        seconds["run"] = time.perf_counter() - t0
        where = f"{socket.gethostname()}:{os.getpid()}"
        if res.returncode != 0:
            return Result(name, "failed", stage_error(res.stdout + "\n" + res.stderr), where, seconds)
        return Result(name, "done", worker=where, seconds=seconds, output=res.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_modules(tasks: Sequence[tuple[str, Sequence[str]]], *, cluster: str = "local", scheduler: str | None = None,
                jobs: int | None = None, threads: int = 2, git_remote: str | None = None,
                dvc_remote: str | None = None) -> list[Result]:
    """run_module for each (name, args) on the cluster the flags name (connected), in the order given."""
    with connected(cluster, scheduler, jobs, threads, git_remote, dvc_remote) as (client, remotes, commit):
        futures = [client.submit(run_module, name, list(args), commit, remotes, key=f"run-{name}-{commit[:7]}",
                                 pure=False, retries=RETRIES) for name, args in tasks]
        return [f.result() for f in futures]


def _must(res: subprocess.CompletedProcess[str], what: str) -> None:
    if res.returncode != 0:
        raise ClusterError(f"{what} failed: {_tail(res)}")


# ---- the client side ----------------------------------------------------------------------------------------

def _git(*args: str, cwd: str | Path | None = None) -> str:
    res = _run(["git", *args], cwd=cwd, timeout=120)
    if res.returncode != 0:
        raise ClusterError(f"git {' '.join(args)} failed: {_tail(res)}")
    return res.stdout.strip()


def _dvc(*args: str, what: str) -> str:
    res = _run([sys.executable, "-m", "dvc", *args])
    if res.returncode != 0:
        raise ClusterError(f"{what}: {_tail(res)}")
    return res.stdout.strip()


def dvc_remotes() -> tuple[dict[str, str], str]:
    """({name: url}, the default remote's name or ""), from `dvc config --list`'s key=value lines (`dvc remote
    list` lays out a table that wraps long URLs onto a second line)."""
    config = dict(line.partition("=")[::2] for line in _dvc("config", "--list", what="dvc config --list")
                  .splitlines() if "=" in line)
    urls = {key[len("remote."):-len(".url")]: url for key, url in config.items()
            if key.startswith("remote.") and key.endswith(".url")}
    return urls, config.get("core.remote", "")


def resolve_remotes(git_remote: str | None, dvc_remote: str | None, local_ok: bool) -> Remotes:
    """The remotes the workers use. A LocalCluster (local_ok) with neither remote set up uses this repo and its
    DVC cache; any other cluster needs both, and an unknown name is a one-line error naming it."""
    git_names = _git("remote").split()
    dvc_urls, default = dvc_remotes()
    git_name = git_remote or ("origin" if "origin" in git_names else "")
    dvc_name = dvc_remote or default
    if local_ok and not git_name and not dvc_name:
        root = _git("rev-parse", "--show-toplevel")
        cache = _dvc("cache", "dir", what="dvc cache dir")
        return Remotes(git=root, dvc=cache, local=True)
    if git_name and git_name not in git_names:
        raise ValueError(f"--git-remote {git_name}: no such git remote here (have: {', '.join(git_names) or 'none'}; "
                         "`git remote add NAME URL`)")
    if not git_name:
        raise ValueError("no git remote: the workers clone the experiment's commit from one "
                         "(`git remote add origin URL`, then `git push origin HEAD`, or --git-remote NAME)")
    if not dvc_name or dvc_name not in dvc_urls:
        have = ", ".join(dvc_urls) or "none"
        raise ValueError(f"--dvc-remote {dvc_name or '(default)'}: no such DVC remote here (have: {have}; "
                         "`dvc remote add -d NAME URL`)")
    return Remotes(git=_git("remote", "get-url", git_name), dvc=dvc_urls[dvc_name], git_name=git_name,
                   dvc_name=dvc_name)


def check_base(remotes: Remotes) -> str:
    """The commit the experiments run on (HEAD), after checking that the workers can get it: no uncommitted
    change to a tracked file outside metrics/ (what the commands themselves rewrite, the sweep's table among
    them; no experiment reads it), the pipeline up to date, HEAD a branch tip on the git remote, its outputs on
    the DVC remote."""
    res = _run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!metrics"], timeout=120)
    changed = [line[3:] for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0 or changed:
        first = changed[0] if changed else _tail(res)
        raise ValueError(f"{first} has uncommitted changes: the workers run commit HEAD, so commit (or stash) "
                         "them first")
    # A dvc.lock behind its code (say bignn/ changed since the last `dvc repro`) reruns every stage on every
    # worker: the dense model retrained in each experiment.
    status = _run([sys.executable, "-m", "dvc", "status", "--quiet"])
    if status.returncode != 0:
        raise ValueError("the pipeline is not up to date at HEAD (`dvc status`): every worker would rerun its "
                         "changed stages; run `dvc repro` and commit dvc.lock first")
    commit = _git("rev-parse", "HEAD")
    if remotes.local:
        return commit
    res = _run(["git", "ls-remote", remotes.git], timeout=120)
    if res.returncode != 0:
        raise ClusterError(f"git remote {remotes.git_name} ({remotes.git}) is unreachable: {_tail(res)}")
    if commit not in {line.split()[0] for line in res.stdout.splitlines() if line.strip()}:
        raise ValueError(f"HEAD {commit[:7]} is not on git remote {remotes.git_name}: `git push {remotes.git_name} "
                         "HEAD` first")
    _dvc("push", "-r", remotes.dvc_name, what=f"dvc push to DVC remote {remotes.dvc_name} ({remotes.dvc}) failed")
    return commit


def check_cores(jobs: int, threads: int, cores: int) -> None:
    """Refuse to oversubscribe: each job runs `threads` threads, and 2 jobs x 2 threads on 2 cores ran a
    fine-tune epoch in 5 min instead of 72 s alone, slower in total than one job at a time."""
    if jobs < 1 or jobs * threads > cores:
        raise ValueError(f"--jobs {jobs} x threads {threads} (params.yaml) must be between 1 and the {cores} cores "
                         f"of this machine; use --jobs {max(1, cores // threads)}")


def local_workers(threads: int, cores: int, jobs: int | None = None) -> int:
    """One worker per `threads` cores (each experiment runs `threads` threads), or `jobs` if given (at least
    one worker, even where `threads` exceeds the cores)."""
    n = max(1, cores // threads) if jobs is None else jobs
    check_cores(n, threads, max(cores, threads))
    return n


def open_client(cluster: str, scheduler: str | None, workers: int, threads: int) -> Any:
    """A distributed.Client: to `scheduler` if given, else to a new cluster of `cluster`'s kind (closed with
    the client)."""
    import dask
    from distributed import Client, LocalCluster

    _tasks_travel_with_their_code()
    if scheduler:
        try:
            # Dask's own setting (30 s unless DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT says otherwise)
            return Client(scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"--scheduler {scheduler}: cannot reach the Dask scheduler: {exc}") from None
    if cluster == "local":
        # Loopback only; one task per worker at a time (each experiment is its own `threads`-thread process).
        lc = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0")
    else:
        try:
            import dask_jobqueue
        except ImportError:
            raise ValueError(f"--cluster {cluster} needs dask-jobqueue: pip install dask-jobqueue==0.9.0") from None
        kind = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[cluster]
        # One worker process per job with the cores one experiment uses; queue, account and walltime come from
        # Dask's config (~/.config/dask/jobqueue.yaml), as dask-jobqueue documents.
        lc = kind(cores=threads, processes=1, memory=f"{4 * threads}GB")
        lc.scale(jobs=workers)
    client = Client(lc)
    client._bignn_cluster = lc  # closed with the client (close_client)
    return client


def _tasks_travel_with_their_code() -> None:
    """A task's code is sent with it: a worker needs dvc and the pipeline's requirements, not this checkout."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def close_client(client: Any) -> None:
    client.close()
    cluster = getattr(client, "_bignn_cluster", None)
    if cluster is not None:
        cluster.close()


def run_experiments(experiments: Sequence[Experiment], client: Any, remotes: Remotes, commit: str,
                    on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Every experiment as one task; results as they arrive (each to on_result), then the pushed ones pulled."""
    from distributed import as_completed

    futures = [client.submit(run_experiment, exp, commit, remotes, key=f"exp-{exp.name}-{commit[:7]}",
                             pure=False, retries=RETRIES) for exp in experiments]
    results = []
    for future in as_completed(futures):
        result = future.result()
        results.append(result)
        if on_result is not None:
            on_result(result)
    ok = [r.name for r in results if r.status != "failed"]
    if ok and not remotes.local:
        _dvc("exp", "pull", remotes.git_name, *ok, what=f"dvc exp pull {remotes.git_name} failed")
    return sorted(results, key=lambda r: [e.name for e in experiments].index(r.name))


def report(result: Result) -> None:
    took = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    cause = f": {result.error}" if result.error else ""
    print(f"{result.name}: {result.status}{cause} ({result.worker}{'; ' + took if took else ''})", flush=True)


def failures(results: Sequence[Result]) -> str:
    """One line per failed experiment, "" when none failed."""
    return "; ".join(f"{r.name}: {r.error}" for r in results if r.status == "failed")


def run_on_cluster(experiments: Sequence[Experiment], *, cluster: str = "local", scheduler: str | None = None,
                   jobs: int | None = None, threads: int = 2, git_remote: str | None = None,
                   dvc_remote: str | None = None, checked: Callable[[], None] | None = None) -> list[Result]:
    """The whole client side: remotes, base commit, cluster, tasks, pull. Raises on an infrastructure error
    (one line naming the scheduler or the remote); a failed experiment is a Result. checked() runs once the
    remotes and the base commit are known good, before any task (the sweep clears its old experiments then)."""
    with connected(cluster, scheduler, jobs, threads, git_remote, dvc_remote) as (client, remotes, commit):
        if checked is not None:
            checked()
        return run_experiments(experiments, client, remotes, commit, report)


@contextlib.contextmanager
def connected(cluster: str, scheduler: str | None, jobs: int | None, threads: int, git_remote: str | None,
              dvc_remote: str | None) -> Iterator[tuple[Any, Remotes, str]]:
    """(client, remotes, base commit) once the remotes, the base commit and the scheduler answered; a cluster
    started here is closed after."""
    if cluster not in CLUSTERS:
        raise ValueError(f"--cluster must be one of {list(CLUSTERS)}, got {cluster!r}")
    remotes = resolve_remotes(git_remote, dvc_remote, local_ok=cluster == "local" and not scheduler)
    commit = check_base(remotes)
    workers = local_workers(threads, os.cpu_count() or 1, jobs) if cluster == "local" else (jobs or 1)
    client = open_client(cluster, scheduler, workers, threads)
    try:
        print(f"Dask dashboard: {client.dashboard_link}; commit {commit[:7]}", flush=True)
        yield client, remotes, commit
    finally:
        close_client(client)


def add_arguments(ap: Any, runners: tuple[str, ...] = ("dask", "queue")) -> None:
    """The flags sweep, frontier and seeds share; the first runner is the default."""
    ap.add_argument("--runner", choices=runners, default=runners[0],
                    help="dask: one Dask task each (commands/cluster.py); queue: DVC's own queue on this machine; "
                         "here: in this process")
    ap.add_argument("--cluster", choices=CLUSTERS, default="local",
                    help="local: a LocalCluster here; slurm, pbs: dask-jobqueue batch jobs")
    ap.add_argument("--scheduler", metavar="tcp://HOST:8786", help="an existing Dask scheduler (overrides --cluster)")
    ap.add_argument("--git-remote", help="the git remote workers clone from and push to (default: origin)")
    ap.add_argument("--dvc-remote", help="the DVC remote workers pull from and push to (default: the default remote)")
    ap.add_argument("--jobs", type=int, help="experiments at once (default: cores / threads here, 1 job for "
                    "jobqueue)")
