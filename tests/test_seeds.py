"""python -m commands seeds: one model over several seeds, with -S overrides that reach the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from bignn.config import Params
from commands import seeds
from tests.conftest import tiny_dict


def test_overrides_set_nested_keys_as_yaml_values() -> None:
    raw = tiny_dict()
    out = seeds.with_overrides(raw, ["prune.dropout=false", "prune.augment=0.5", "seed=3"])
    assert out["prune"]["dropout"] is False and out["prune"]["augment"] == 0.5 and out["seed"] == 3
    assert raw["prune"]["dropout"] is True and raw["prune"]["augment"] == 1.0  # the input is left alone
    with pytest.raises(ValueError, match="expected section.key=value"):
        seeds.with_overrides(raw, ["prune.dropout"])
    with pytest.raises(ValueError, match="seed is not a section"):
        seeds.with_overrides(raw, ["seed.x=1"])


def test_each_seed_runs_with_the_overrides(synthetic_root: Path, in_tmp: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Params] = []

    def fake(params: Params, data: tuple) -> torch.nn.Module:
        seen.append(params)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

    monkeypatch.setitem(seeds.MODELS, "channel", ("channel.seed", fake))
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(tiny_dict(data={"root": str(synthetic_root),
                                                                       "verify": False})))
    assert tiny_dict()["channel"]["dropout"] is True  # the overrides below change something
    seeds.main(["channel", "--seeds", "4", "5", "-S", "channel.dropout=false", "-S", "channel.augment=0.25"])
    assert [p.channel.seed for p in seen] == [4, 5]
    assert all(p.channel.dropout is False and p.channel.augment == 0.25 for p in seen)


def test_summary_is_mean_and_std() -> None:
    rows = [{"accuracy": a} for a in (99.0, 99.2, 99.4)]
    assert seeds.summary(rows) == "99.20 ± 0.20 over 3 seeds (99.00 / 99.20 / 99.40)"
    with pytest.raises(ValueError, match="model: expected one of"):
        seeds.run("nope", [0], tiny_dict())
