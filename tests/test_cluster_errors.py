"""The Dask runner's refusals (commands/cluster.py), each one line naming what is wrong, before any task runs;
and `dvc artifacts get` from the shared remotes. A module of its own, so that pytest-xdist runs it beside
tests/test_cluster.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from commands import sweep
from tests.dvc_repo import copy_repo, run, sh, with_remotes


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return with_remotes(tiny_template[0], tmp_path_factory.mktemp("cluster-errors"))


def test_artifacts_come_from_the_shared_remote(repo: Path, tmp_path: Path) -> None:
    """A version of an artifact dvc.yaml declares (a git tag in the model registry's name@vX.Y.Z form), then
    `dvc artifacts get` by the git remote's URL: the committed model's bytes, from the DVC remote."""
    sh(repo, "git", "tag", "-a", "dense-cnn@v0.1.0", "-m", "tiny dense model")
    sh(repo, "git", "push", "-q", "origin", "dense-cnn@v0.1.0")
    sh(tmp_path, "dvc", "artifacts", "get", str(repo.parent / "origin.git"), "dense-cnn", "-o", "dense.pth")
    assert hashlib.md5((tmp_path / "dense.pth").read_bytes()).digest() == hashlib.md5(
        (repo / "models" / "dense.pth").read_bytes()).digest()


def test_an_unreachable_scheduler_is_one_line_naming_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole command line, in its own process: one line on stderr, exit 1, nothing pushed."""
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "3s")  # Dask's own setting; 30 s by default
    res = run(repo, "python", "-m", "commands", "sweep", "--amounts", "0.5", "--scheduler", "tcp://127.0.0.1:9")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: --scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler")
    assert "/sweep-0.5-" not in sh(repo, "git", "ls-remote", str(repo.parent / "origin.git"), "refs/exps/*")


@pytest.mark.parametrize(("flags", "named"), [
    (["--git-remote", "nowhere"], "--git-remote nowhere: no such git remote here"),
    (["--git-remote", "gone"], "git remote gone ("),
    (["--dvc-remote", "nowhere"], "--dvc-remote nowhere: no such DVC remote here"),
    # dask-jobqueue is an optional extra, not in requirements.txt
    (["--cluster", "slurm"], "--cluster slurm needs dask-jobqueue: pip install dask-jobqueue==0.9.0"),
])
def test_an_unknown_or_unreachable_remote_is_one_line_naming_it(repo: Path, tmp_path: Path, flags: list[str],
                                                                named: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (the command line prints what these raise as one line, exit 1: the test above)."""
    monkeypatch.chdir(repo)
    if "gone" in flags:
        sh(repo, "git", "remote", "add", "gone", str(tmp_path / "no-such-repo.git"))
    with pytest.raises((ValueError, OSError)) as err:
        sweep.main(["--amounts", "0.5", *flags])
    assert named in str(err.value) and "\n" not in str(err.value)
    assert "/sweep-0.5-" not in sh(repo, "git", "ls-remote", str(repo.parent / "origin.git"), "refs/exps/*")


def test_a_pipeline_behind_its_code_is_refused_before_any_task(repo: Path, tmp_path: Path) -> None:
    """A dvc.lock older than bignn/ would retrain the dense model on every worker: one line, exit 1."""
    work = copy_repo(repo, tmp_path / "repo")
    with (work / "bignn" / "data.py").open("a") as fh:
        fh.write("# changed\n")
    sh(work, "git", "commit", "-q", "-am", "code changed, dvc.lock not")
    res = run(work, "python", "-m", "commands", "sweep", "--amounts", "0.5")
    assert res.returncode == 1 and res.stderr.startswith("error: the pipeline is not up to date at HEAD"), res.stderr
