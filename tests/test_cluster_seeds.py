"""`commands.seeds --runner dask` on a LocalCluster against the shared remotes (commands/cluster.py): a module
of its own, so that pytest-xdist runs it beside tests/test_cluster.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands import seeds
from tests.dvc_repo import with_remotes


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return with_remotes(tiny_template[0], tmp_path_factory.mktemp("cluster-seeds"))


def test_seeds_on_dask_give_the_runs_of_this_process(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`seeds --runner dask`: each seed a task in a clone with the commit's models pulled; the same accuracy as
    the same seeds run here, in seed order."""
    monkeypatch.chdir(repo)
    seeds.main(["pruned", "--seeds", "0", "1", "--runner", "dask", "--jobs", "2", "--json"])
    on_dask = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    here = seeds.run("pruned", [0, 1], seeds.base_params([]))
    assert [(r["seed"], r["accuracy"]) for r in on_dask] == [(r["seed"], r["accuracy"]) for r in here]
