"""A tiny DVC project in a fresh git repo, for the end-to-end tests.

One test session builds it and runs `dvc repro` once (template_repo: tests/conftest.py starts that in the
background at session start, and any pytest-xdist worker that needs it first waits on a file lock) and each
end-to-end module works in its own copy (copy_repo). Three modules each reproduced a repo of their own before,
~40 s of 2 cores each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

import yaml
from filelock import FileLock

from tests.tiny import tiny_dict

ROOT = Path(__file__).resolve().parents[1]


def run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    """cmd in cwd, with this interpreter's venv first on PATH (dvc runs the stages with `python`)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def sh(cwd: Path, *cmd: str) -> str:
    res = run(cwd, *cmd)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def make_repo(repo: Path) -> Path:
    """This project's code and dvc.yaml with tiny params, committed; nothing run yet."""
    for package in ("bignn", "stages", "commands"):
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    # The file format the default params write (range-coded k-means), end to end.
    compress = yaml.safe_load((ROOT / "params.yaml").read_text())["compress"]
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_dict(prune={"amount": 0.5}, compress=compress)))
    sh(repo, "git", "init", "-q", "-b", "main")
    # CI has no git identity; `dvc exp run` commits, so the test repo needs one.
    sh(repo, "git", "config", "user.name", "pipeline test")
    sh(repo, "git", "config", "user.email", "test@example.invalid")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.analytics", "false")
    # The project's plot templates and page (.dvc/plots/), as a clone of it has them.
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    sh(repo, "dvc", "config", "plots.html_template", "plots/page.html")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny pipeline")
    return repo


def tiny_conf(repo: Path) -> None:
    """conf/ for the tiny pipeline, as the project has it for the real one: the tiny params (the same dict
    make_repo writes), with the project's real prune presets over a tiny default. `dvc exp run` composes
    params.yaml from it (Hydra)."""
    tiny = yaml.safe_load((repo / "params.yaml").read_text())
    prune = tiny.pop("prune")
    shutil.copytree(ROOT / "conf" / "prune", repo / "conf" / "prune")
    (repo / "conf" / "prune" / "default.yaml").write_text(yaml.safe_dump(prune))
    (repo / "conf" / "config.yaml").write_text(
        yaml.safe_dump({"defaults": ["_self_", {"prune": "default"}]}) + yaml.safe_dump({**tiny, "prune": {}}))


def reproduced_repo(repo: Path) -> str:
    """make_repo with conf/ (Hydra on, params.yaml composed from it), then `dvc repro`, with the results
    committed: the baseline every end-to-end test starts from. Returns what `dvc repro` printed."""
    make_repo(repo)
    tiny_conf(repo)
    sh(repo, "dvc", "config", "hydra.enabled", "true")
    sh(repo, sys.executable, "-m", "commands", "params")
    out = sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny pipeline and its results")
    return out


def template_repo(shared: Path) -> tuple[Path, str]:
    """The session's one reproduced repo under `shared` (a folder every xdist worker of the session sees) and
    its `dvc repro` output; built by the first caller, read-only to the rest (copy it with copy_repo)."""
    repo, log = shared / "tiny-template", shared / "tiny-template.log"
    with FileLock(str(shared / "tiny-template.lock")):
        if not log.exists():
            shutil.rmtree(repo, ignore_errors=True)  # a build that failed half-way
            repo.mkdir()
            log.write_text(reproduced_repo(repo))
    return repo, log.read_text()


def copy_repo(template: Path, dest: Path) -> Path:
    """A working copy of the template: git history, DVC cache and run-cache, outputs. DVC's tmp/ (locks, its
    index of this folder's paths) stays behind; DVC makes it anew."""
    shutil.copytree(template, dest, symlinks=True, dirs_exist_ok=True,
                    ignore=lambda folder, names: ["tmp"] if Path(folder).name == ".dvc" else [])
    return dest


def outputs(repo: Path) -> dict[str, bytes]:
    """Every file the pipeline writes (models and metrics), by path."""
    return {str(p.relative_to(repo)): p.read_bytes() for d in ("models", "metrics") for p in (repo / d).rglob("*")
            if p.is_file()}


def metrics(repo: Path, name: str) -> dict:
    """metrics/<name>.json of the repo."""
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def ran(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Running stage")]


def assert_restored(repo: Path, out: str, before: dict[str, bytes]) -> None:
    """DVC ran no stage (all came from the run-cache) and every output is byte for byte as `before`."""
    assert ran(out) == [] and "skipping run" in out, out
    assert outputs(repo) == before


def queue_busy(repo: Path) -> bool:
    """Whether an experiment is queued or running: what `dvc queue status` calls Queued and Running, read in
    this process through DVC's own queue (0.1 s of CPU a look; a `dvc queue status` process costs 0.6 s, and
    the suite is CPU-bound)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        queue = dvc_repo.experiments.celery_queue
        return any(True for _ in chain(queue.iter_queued(), queue.iter_active()))


def run_queue(repo: Path, jobs: int) -> str:
    """`dvc queue start -j jobs`, wait (10 min at most) until nothing is queued or running, stop the workers;
    returns the final `dvc queue status`, which must show no failed experiment."""
    from commands import sweep

    sweep.start_queue(jobs, cwd=str(repo))  # not sh(): a captured pipe would wait for the idle workers to exit
    try:
        deadline = time.monotonic() + 600
        while queue_busy(repo):
            assert time.monotonic() < deadline, "queue did not finish in 10 minutes"
            time.sleep(2)
        status = sh(repo, "dvc", "queue", "status")
    finally:
        sh(repo, "dvc", "queue", "stop")  # no idle worker outlives the test
    assert "Failed" not in status, status
    return status


if __name__ == "__main__":
    # `python -m tests.dvc_repo FOLDER`: build the session's template there (conftest starts this at session start).
    template_repo(Path(sys.argv[1]))


def with_remotes(template: Path, dest: Path) -> Path:
    """A copy of the tiny repo with a git remote (a bare repo beside it) and a default DVC remote (a folder),
    committed and pushed as README says: what a worker on another machine would clone and pull from."""
    repo = copy_repo(template, dest / "repo")
    sh(dest, "git", "init", "-q", "--bare", "-b", "main", "origin.git")
    sh(repo, "git", "remote", "add", "origin", str(dest / "origin.git"))
    sh(repo, "dvc", "remote", "add", "-d", "store", str(dest / "dvc-store"))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "shared remotes")
    sh(repo, "git", "push", "-q", "origin", "main")
    sh(repo, "dvc", "push", "-q")
    return repo
