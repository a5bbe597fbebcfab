"""DVC experiments on a tiny pipeline: the run-cache restores what was computed before (queued experiments:
tests/test_queue.py). A copy of its own of the session's tiny repo, so that pytest-xdist runs this module beside
the other end-to-end modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.dvc_repo import assert_restored, copy_repo, outputs, sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return copy_repo(tiny_template[0], tmp_path_factory.mktemp("repo"))


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
