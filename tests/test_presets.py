"""Named presets: conf/ composes params.yaml as `dvc exp run -S prune=p99` does (Hydra), and the committed
params.yaml is that composition. A preset run through DVC's queue and back from its run-cache:
tests/test_queue.py (one queue run serves the sweep points and the preset)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bignn.config import params_from_dict
from commands import params, seeds
from tests.conftest import committed

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def _composed(*overrides: str) -> dict:
    return yaml.safe_load(params.compose(overrides, CONF))


def test_committed_params_yaml_is_what_conf_composes() -> None:
    """The committed params.yaml, or the workspace's (conf/ edited and composed, not yet committed), is what
    conf/ composes; a workspace `dvc exp run -S ...` changes only the workspace's copy."""
    composed = params.compose((), CONF)
    assert composed in (committed("params.yaml"), (ROOT / "params.yaml").read_text(encoding="utf-8")), \
        "params.yaml differs from conf/: run `python -m commands params`"


def test_committed_params_page_is_what_conf_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/params.md: every key with its composed default and the comment above it in conf/."""
    monkeypatch.chdir(ROOT)
    doc = params.params_doc(CONF)
    assert (ROOT / "docs" / "params.md").read_text(encoding="utf-8") == doc, \
        "docs/params.md differs from conf/: run `python -m commands params`"
    raw = yaml.safe_load(params.compose((), CONF))
    assert f"| `prune.amount` | `{raw['prune']['amount']}` |" in doc
    assert f"| `train.lr` | `{raw['train']['lr']}` | OneCycle peaks at lr" in doc
    assert "| `-S prune=p99` |" in doc and "| `-S combine=s8` |" in doc


def test_a_key_without_its_why_stops_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    text = (conf / "config.yaml").read_text().replace(
        "  # Images per optimizer step.\n  batch_size: 128\n", "  batch_size: 128\n", 1)
    (conf / "config.yaml").write_text(text)
    monkeypatch.chdir(ROOT)
    with pytest.raises(ValueError, match=r"key train.batch_size has no comment"):
        params.params_doc(conf)


def test_hydra_composition_is_on_for_dvc_exp_run() -> None:
    config = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in config and "enabled = true" in config


def test_presets_change_only_their_recipe() -> None:
    default = _composed()
    p99, p995 = _composed("prune=p99"), _composed("prune=p995")
    assert {k for k in default if default[k] != p99[k]} == {"prune"}  # nothing outside the section moves
    changed = {k for k in default["prune"] if default["prune"][k] != p99["prune"][k]}
    assert changed == {"amount", "finetune_epochs", "ramp", "schedule", "lr"}  # dropout, augment as default
    assert p99["prune"]["amount"] == 0.99 and p995["prune"]["amount"] == 0.995
    assert p995["prune"]["regrow"] == 0.1 and p995["prune"]["augment"] == 0.0
    assert p995["prune"]["finetune_epochs"] == p99["prune"]["finetune_epochs"] == 8
    # A preset and a single key together, as `dvc exp run -S prune=p99 -S prune.seed=2` passes them.
    assert _composed("prune=p99", "prune.seed=2")["prune"] == {**p99["prune"], "seed": 2}


def test_combine_presets_start_from_the_student_and_change_only_combine() -> None:
    default, s16, s8 = _composed(), _composed("combine=s16"), _composed("combine=s8")
    assert {k for k in default if default[k] != s16[k]} == {"combine"}
    assert default["combine"]["source"] == "channel"
    assert s16["combine"]["source"] == s8["combine"]["source"] == "student"
    assert {k for k in s16["combine"] if s16["combine"][k] != s8["combine"][k]} == {"amount", "finetune_epochs"}
    assert s16["combine"]["amount"] < s8["combine"]["amount"]  # the 8 KB file keeps fewer weights
    assert _composed("combine=s8", "combine.seed=2")["combine"] == {**s8["combine"], "seed": 2}


KB2_OWN = {"amount", "augment", "codebook_epochs", "method", "steps", "label_smoothing"}


@pytest.mark.parametrize(("preset", "conv", "epochs", "smoothing", "own"), [
    ("kb8", [16, 32, 64], 30, 0.1, {"amount", "finetune_epochs", "codebook_epochs"}),
    ("kb4", [16, 32, 64], 15, 0.0, {"amount", "finetune_epochs", "augment", "codebook_epochs", "method", "steps",
                                    "label_smoothing"}),
    ("kb2", [8, 16, 32], 20, 0.0, KB2_OWN)])
def test_the_global_presets_set_their_student_and_the_rest_of_s8(preset: str, conv: list[int], epochs: int,
                                                                   smoothing: float, own: set[str]) -> None:
    """kb8, kb4, kb2 (`# @package _global_`): the student's shape, epochs (and kb4's and kb2's label smoothing)
    in distill, s8's combine recipe with their own amount and fine-tune epochs or augmentation (and trained
    shared values; kb4's and kb2's learned ranking in one step, without label smoothing); nothing else moves,
    and one key still overrides them."""
    default, s8, kb = _composed(), _composed("combine=s8"), _composed(f"combine={preset}")
    assert {k for k in default if default[k] != kb[k]} == {"combine", "distill"}
    assert {k for k in s8["combine"] if s8["combine"][k] != kb["combine"][k]} == own
    assert kb["distill"] == {**default["distill"], "epochs": epochs, "label_smoothing": smoothing,
                             "student": {"conv_channels": conv, "hidden": [], "dropout": 0.0}}
    assert _composed(f"combine={preset}", "distill.seed=2")["distill"]["seed"] == 2


def test_every_preset_is_a_valid_config() -> None:
    groups = params.presets(CONF)
    assert groups["prune"] == ["default", "p99", "p995"]
    assert groups["combine"] == ["default", "kb2", "kb4", "kb8", "s16", "s8"]
    for group, names in groups.items():
        for name in names:
            params_from_dict(_composed(f"{group}={name}"))


def test_a_preset_that_does_not_exist_names_the_ones_that_do() -> None:
    with pytest.raises(ValueError, match=r"prune=p98: .*'prune/p98' \(presets: .*prune: default, p99, p995"):
        params.compose(["prune=p98"], CONF)
    with pytest.raises(ValueError, match=r"prune.amount must be a number in \[0, 1\)"):
        params.compose(["prune.amount=1.5"], CONF)


def test_check_fails_on_a_hand_edited_params_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CONF, tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    params.main([])
    params.main(["--check"])
    edited = (tmp_path / "params.yaml").read_text().replace("amount: 0.95", "amount: 0.9")
    (tmp_path / "params.yaml").write_text(edited)
    with pytest.raises(SystemExit) as done:
        params.main(["--check"])
    assert done.value.code == 1
    assert (tmp_path / "params.yaml").read_text() == edited  # --check changes nothing


def test_seeds_takes_a_preset_as_dvc_exp_run_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CONF, tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    assert seeds.base_params(["prune=p99", "prune.seed=3"]) == _composed("prune=p99", "prune.seed=3")
