"""params.yaml validation: every bad value fails with a message that names its key."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bignn.config import ConfigError, load_params, params_from_dict
from tests.conftest import committed
from tests.tiny import TINY, tiny_dict

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_build() -> None:
    """The workspace's params.yaml (whatever a `dvc exp run -S` set) and the committed one are valid configs;
    their values are conf/'s, checked in tests/test_presets.py."""
    assert load_params(ROOT / "params.yaml").kernels in ("portable", "baseline", "native")
    assert params_from_dict(yaml.safe_load(committed("params.yaml"))).model.conv_channels


def test_tiny_params_build() -> None:
    assert params_from_dict(TINY).prune.amount == 0.8


@pytest.mark.parametrize(("section", "key", "value", "named"), [
    ("prune", "amount", 1.0, "prune.amount"),
    ("prune", "amount", -0.1, "prune.amount"),
    ("prune", "amount", "half", "prune.amount"),
    ("prune", "amount", True, "prune.amount"),
    ("prune", "method", "magnitude", "prune.method"),
    ("prune", "steps", 0, "prune.steps"),
    ("prune", "finetune_epochs", -1, "prune.finetune_epochs"),
    ("prune", "ramp", 0.0, "prune.ramp"),
    ("prune", "seed", -1, "prune.seed"),
    ("distill", "seed", -1, "distill.seed"),
    ("prune", "min_density_ends", 1.5, "prune.min_density_ends"),
    ("prune", "schedule", "linear", "prune.schedule"),
    ("prune", "augment", 1.5, "prune.augment"),
    ("combine", "augment", -0.5, "combine.augment"),
    ("channel", "augment", 2, "channel.augment"),
    ("prune", "regrow", 1.0, "prune.regrow"),
    ("prune", "regrow_every", 0, "prune.regrow_every"),
    ("prune", "distill_alpha", 1.5, "prune.distill_alpha"),
    ("combine", "distill_temperature", 0, "combine.distill_temperature"),
    ("prune", "vd_epochs", -1, "prune.vd_epochs"),
    ("prune", "vd_lr", 0, "prune.vd_lr"),
    ("combine", "vd_beta", -1, "combine.vd_beta"),
    ("combine", "label_smoothing", 1.0, "combine.label_smoothing"),
    ("channel", "label_smoothing", -0.1, "channel.label_smoothing"),
    ("distill", "label_smoothing", 1.0, "distill.label_smoothing"),
    ("distill", "soft_targets", "teacher", "distill.soft_targets"),
    ("distill", "elastic", -1.0, "distill.elastic"),
    ("distill", "elastic_sigma", 0.0, "distill.elastic_sigma"),
    ("compress", "coder", "zip", "compress.coder"),
    ("compress", "quantizer", "kmeans", "compress.quantizer"),
    ("data", "source", "ftp", "data.source"),
    ("data", "train_limit", -5, "data.train_limit"),
    ("train", "epochs", 0, "train.epochs"),
    ("train", "epochs", 2.5, "train.epochs"),
    ("train", "batch_size", -1, "train.batch_size"),
    ("train", "lr", 0, "train.lr"),
    ("model", "conv_channels", [32, 0], "model.conv_channels"),
    ("model", "hidden", "wide", "model.hidden"),
    ("model", "dropout", 1.0, "model.dropout"),
    ("evaluate", "latency_runs", 0, "evaluate.latency_runs"),
    ("prune", "amout", 0.5, "prune.amout"),  # a typo is an unknown key, not a silent default
    ("distill", "alpha", 1.5, "distill.alpha"),
    ("distill", "temperature", 0, "distill.temperature"),
    ("distill", "student", {"conv_channels": [8], "hidden": [0], "dropout": 0.0}, "distill.student.hidden"),
    ("compress", "bits", 9, "compress.bits"),
    ("channel", "amount", 1.0, "channel.amount"),
])
def test_bad_value_is_rejected_naming_the_key(section: str, key: str, value: object, named: str) -> None:
    raw = tiny_dict()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        params_from_dict(raw)


def test_a_learned_ranking_needs_its_epochs() -> None:
    raw = tiny_dict()
    raw["combine"].update(method="global_vd", vd_epochs=0)
    with pytest.raises(ConfigError, match=r"combine\.vd_epochs must be an integer >= 1 for combine\.method global_vd"):
        params_from_dict(raw)
    raw["combine"]["vd_epochs"] = 1
    assert params_from_dict(raw).combine.method == "global_vd"


def test_unknown_top_level_key_and_missing_section() -> None:
    with pytest.raises(ConfigError, match="'sed'"):
        params_from_dict({**tiny_dict(), "sed": 1})
    raw = tiny_dict()
    del raw["prune"]
    with pytest.raises(ConfigError, match="missing section 'prune'"):
        params_from_dict(raw)


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("prune: [unclosed\n", "not valid YAML"),
    ("- a list\n", "a mapping"),
])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def _bad(section: str, key: str, value: object) -> str:
    raw = tiny_dict()
    raw[section][key] = value
    return yaml.safe_dump(raw)


def _without(section: str) -> str:
    raw = tiny_dict()
    del raw[section]
    return yaml.safe_dump(raw)


BAD_PARAMS = [
    ("prune", _bad("prune", "amount", 1.5), "prune.amount must be a number in [0, 1), got 1.5"),
    ("prune", _bad("prune", "amount", "lots"), "prune.amount must be a number"),
    ("prune", _bad("prune", "method", "magic"),
     "prune.method must be one of ['global_l1', 'layer_l1', 'erk_l1', 'random', 'global_vd']"),
    ("channel", _bad("channel", "amount", 1.0), "channel.amount must be a number in [0, 1), got 1.0"),
    ("channel", _bad("channel", "schedule", "step"), "channel.schedule must be cosine or onecycle, got 'step'"),
    ("train", _bad("train", "epochs", 0), "train.epochs must be an integer > 0"),
    ("train", _bad("train", "batch_size", "big"), "train.batch_size must be an integer"),
    ("train", _bad("model", "hidden", [64, -1]), "model.hidden must be a list of positive integers"),
    ("download", _bad("data", "source", "ftp"), "data.source must be one of"),
    ("evaluate", _bad("evaluate", "latency_runs", -3), "evaluate.latency_runs must be an integer > 0"),
    ("evaluate", _bad("evaluate", "colour", "red"), "unknown key 'evaluate.colour'"),
    ("distill", _bad("distill", "alpha", -0.5), "distill.alpha must be a number in [0, 1], got -0.5"),
    ("compress", _bad("compress", "bits", 1), "compress.bits must be an integer in [2, 8], got 1"),
    ("commands/bench", _bad("bench", "repeats", 0), "bench.repeats must be an integer > 0"),
    ("train", _without("train"), "params.yaml is missing section 'train'"),
    ("prune", "", "params.yaml is empty"),
    ("prune", "prune: {amount: [0.5\n", "params.yaml is not valid YAML"),
]


def _previous_outputs(root: Path) -> list[Path]:
    outputs = [root / "models" / "dense.pth", root / "models" / "pruned.pth",
               root / "metrics" / "pruned.json", root / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"previous output")
    return outputs


def test_stage_with_bad_params_exits_with_one_line_and_keeps_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every case runs the stage's file as `python -m stages.<stage>` does (its __main__ block), in this process:
    a fresh interpreter per case would spend its time importing torch. A name with a folder is a command's."""
    monkeypatch.chdir(tmp_path)
    failures = []
    for stage, text, named in BAD_PARAMS:
        path = ROOT / (f"{stage}.py" if "/" in stage else f"stages/{stage}.py")
        monkeypatch.setattr(sys, "argv", [str(path)])  # no flags, as DVC starts it
        (tmp_path / "params.yaml").write_text(text)
        outputs = _previous_outputs(tmp_path)
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(path), run_name="__main__")
        lines = capsys.readouterr().err.strip().splitlines()
        if exit_info.value.code != 1 or len(lines) != 1 or not lines[0].startswith("error: ") or named not in lines[0]:
            failures.append((stage, named, exit_info.value.code, lines))
        if not all(path.read_bytes() == b"previous output" for path in outputs):
            failures.append((stage, named, "an output was changed"))
    assert not failures


@pytest.mark.parametrize("stage", ["train", "prune"])
def test_stage_command_with_bad_params_exits_1_with_one_line(tmp_path: Path, stage: str) -> None:
    """The same through a real `python -m` process, for the two stages whose outputs cost the most to redo."""
    (tmp_path / "params.yaml").write_text(_bad(stage, "batch_size", 0))
    outputs = _previous_outputs(tmp_path)
    res = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {stage}.batch_size must be an integer > 0, got 0", res.stderr
    assert all(path.read_bytes() == b"previous output" for path in outputs)


# runpy notes that this process imported the stage before (conftest): run again as __main__, as meant.
@pytest.mark.filterwarnings("ignore:'stages.*found in sys.modules:RuntimeWarning")
def test_stage_command_line_takes_help_and_refuses_anything_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` describes the stage and runs nothing; a typo stops with usage (exit 2): no output is touched.
    The first case through a real `python -m` process, the others in this one (as `python -m stages.<stage>`
    runs the module: its __main__ block), each process importing torch for a second or two."""
    outputs = _previous_outputs(tmp_path)
    res = subprocess.run([sys.executable, "-m", "stages.train", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-500:]
    assert "usage: python -m stages train" in res.stdout
    monkeypatch.chdir(tmp_path)
    for stage, args, code in (("prune", ["--epochs=3"], 2), ("export", ["--help"], 0), ("export", ["--ort-int9"], 2)):
        monkeypatch.setattr(sys, "argv", [str(ROOT / "stages" / f"{stage}.py"), *args])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module(f"stages.{stage}", run_name="__main__")
        printed = capsys.readouterr()
        assert exit_info.value.code == code, (stage, args, printed.err[-500:])
        assert f"usage: python -m stages {stage}" in printed.out + printed.err
    assert all(path.read_bytes() == b"previous output" for path in outputs)
    assert not (tmp_path / "models" / "dense.onnx").exists()


def test_keys_that_cannot_apply_are_refused() -> None:
    # a layer floor for methods that do not rank globally; regrowth without a fine-tune
    with pytest.raises(ConfigError, match="prune.min_density_ends must be 0 for prune.method layer_l1"):
        params_from_dict(tiny_dict(prune={"method": "layer_l1", "min_density_ends": 0.2}))
    with pytest.raises(ConfigError, match="prune.regrow must be 0 when prune.finetune_epochs is 0"):
        params_from_dict(tiny_dict(prune={"finetune_epochs": 0, "regrow": 0.1}))
