"""End to end: the channel stage in the tiny pipeline, and an experiment that changes only its amount, in a
temporary copy (`dvc exp run --temp`). A copy of its own of the session's tiny repo, so that pytest-xdist runs
this module beside the other end-to-end modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands import sweep
from tests.dvc_repo import copy_repo, metrics, sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_template: tuple[Path, str]) -> Path:
    return copy_repo(tiny_template[0], tmp_path_factory.mktemp("channel"))



def test_channel_stage_writes_smaller_models_and_runs_its_own_experiments(repo: Path) -> None:
    m = {name: metrics(repo, name) for name in ("dense", "channel", "channel_int8")}
    assert set(m["channel"]) == set(m["channel_int8"]) == set(m["dense"])  # one set of keys for every model
    # Smaller in shape, not masked: fewer parameters and no zeros left; int8 fewer bytes (in this tiny model the
    # scales and the file's own structure weigh as much as the weights).
    assert m["channel"]["params_total"] < m["dense"]["params_total"] / 3 and m["channel"]["sparsity"] < 0.05
    assert m["channel_int8"]["checkpoint_bytes"] < m["channel"]["checkpoint_bytes"]
    assert abs(m["channel_int8"]["accuracy"] - m["channel"]["accuracy"]) < 5
    # --temp: run in a temporary copy, so the workspace (and the tests after this one) keep the defaults. Up to
    # evaluate, as the sweep and frontier runners run theirs: export (8 s of CPU here) is not on its way.
    out = sh(repo, "dvc", "exp", "run", "--temp", "-n", "channels", "-S", "channel.amount=0.25", "evaluate")
    assert "Running stage 'channel'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'train'" not in out and "Running stage 'prune'" not in out
    found = dict(sweep.experiments(json.loads(sh(repo, "dvc", "exp", "show", "--json"))))
    wider = found["channels"]["metrics"]["metrics/channel.json"]["data"]
    assert wider["params_total"] > m["channel"]["params_total"]
    assert metrics(repo, "channel") == m["channel"]  # workspace untouched
