"""DVC experiments on a tiny pipeline: the run-cache restores what was computed before, and queued
experiments run side by side. A repo of its own, so that pytest-xdist runs this module beside test_pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from commands import sweep
from tests.dvc_repo import assert_restored, outputs, reproduced_repo, run_queue, sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reproduced_repo(tmp_path_factory.mktemp("repo"))


def test_run_cache_restores_a_param_set_tried_before(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    params = (repo / "params.yaml").read_text()
    first = outputs(repo)
    amount = yaml.safe_load(params)["prune"]["amount"]
    changed = yaml.safe_load(params)
    changed["prune"]["amount"] = 0.4 if amount != 0.4 else 0.45
    (repo / "params.yaml").write_text(yaml.safe_dump(changed))
    assert "Running stage 'prune'" in sh(repo, "dvc", "repro")
    assert outputs(repo)["metrics/pruned.json"] != first["metrics/pruned.json"]
    (repo / "params.yaml").write_text(params)
    out = sh(repo, "dvc", "repro")
    # Back to the first params: prune, compress and evaluate come from the run-cache, nothing recomputes.
    assert_restored(repo, out, first)


def test_experiment_back_to_earlier_params_is_restored_not_recomputed(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "baseline for the run-cache experiment")
    amount = yaml.safe_load((repo / "params.yaml").read_text())["prune"]["amount"]
    first = outputs(repo)
    assert "Running stage 'prune'" in sh(repo, "dvc", "exp", "run", "-S", "prune.amount=0.35")
    assert_restored(repo, sh(repo, "dvc", "exp", "run", "-S", f"prune.amount={amount}"), first)


def test_three_queued_experiments_run_two_at_a_time(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "baseline for the queue")
    amounts = (0.3, 0.6, 0.95)  # more than the two workers, so one waits in the queue
    # DVC's own grid syntax, as commands.sweep queues it: one command, q-1 .. q-3.
    sh(repo, *sweep.queue_command(amounts, name="q"))
    run_queue(repo, 2)
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    found = {name: (data["params"]["params.yaml"]["data"]["prune"]["amount"],
                    data["metrics"]["metrics/pruned.json"]["data"]["sparsity"])
             for name, data in sweep.experiments(shown) if name.startswith("q-")}
    assert set(found) == {"q-1", "q-2", "q-3"}
    assert sorted(amount for amount, _ in found.values()) == list(amounts)
    for amount, sparsity in found.values():
        assert sparsity == pytest.approx(amount, abs=1e-4)
