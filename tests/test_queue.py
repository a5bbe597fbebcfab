"""DVC's queue on the tiny pipeline: sweep points and a preset run side by side, and the run-cache they fill.
A copy of its own of the session's tiny repo, so that pytest-xdist runs this module beside the other
end-to-end modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from commands import sweep
from tests.dvc_repo import copy_repo, outputs, ran, run_queue, sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return copy_repo(tiny_template[0], tmp_path_factory.mktemp("queue"))


def test_queued_experiments_and_a_preset_run_two_at_a_time(repo: Path) -> None:
    """Two sweep points and the p99 preset (conf/prune/p99.yaml, composed by Hydra) in one queue run of two
    workers; then the preset again in the workspace comes back from the run-cache the queued run filled."""
    amounts = (0.3, 0.95)  # with the preset, more than the two workers: one waits in the queue
    # DVC's own grid syntax, as commands.sweep queues it: one command, q-1 and q-2.
    sh(repo, *sweep.queue_command(amounts, name="q"))
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "p99", "-S", "prune=p99")
    run_queue(repo, 2)
    shown = dict(sweep.experiments(json.loads(sh(repo, "dvc", "exp", "show", "--json"))))
    found = {name: (data["params"]["params.yaml"]["data"]["prune"]["amount"],
                    data["metrics"]["metrics/pruned.json"]["data"]["sparsity"])
             for name, data in shown.items() if name.startswith("q-")}
    assert set(found) == {"q-1", "q-2"}
    assert sorted(amount for amount, _ in found.values()) == list(amounts)
    for amount, sparsity in found.values():
        assert sparsity == pytest.approx(amount, abs=1e-4)
    queued = shown["p99"]
    assert queued["params"]["params.yaml"]["data"]["prune"]["finetune_epochs"] == 8
    assert queued["metrics"]["metrics/pruned.json"]["data"]["sparsity"] == pytest.approx(0.99, abs=1e-4)
    # The same preset again, in the workspace: every stage it changes comes from the run-cache the queued
    # run filled, nothing is retrained, and the workspace gets the queued run's outputs.
    out = sh(repo, "dvc", "exp", "run", "-S", "prune=p99")
    assert ran(out) == [] and "skipping run" in out, out
    assert yaml.safe_load((repo / "params.yaml").read_text())["prune"]["amount"] == 0.99
    assert json.loads(outputs(repo)["metrics/pruned.json"]) == queued["metrics"]["metrics/pruned.json"]["data"]
