"""python -m commands compare: two model files on the same test images, and the test set's own noise."""

from __future__ import annotations

import pytest
import torch
import yaml

from bignn import paths
from bignn.config import Params
from bignn.data import split_of
from bignn.io import load_checkpoint
from bignn.training import predict, score
from commands import compare
from tests.tiny import tiny_dict


def test_agreement_counts_the_images_one_model_gets_right_and_the_other_not() -> None:
    right_a = torch.tensor([True] * 90 + [False] * 4 + [False] * 6)
    right_b = torch.tensor([True] * 90 + [False] * 4 + [True] * 6)
    r = compare.agreement(right_a, right_b)
    assert (r["n"], r["only_a"], r["only_b"]) == (100, 0, 6)
    assert r["accuracy_a"] == pytest.approx(90) and r["accuracy_b"] == pytest.approx(96)
    assert r["lead"] == pytest.approx(-6) and r["stderr"] == pytest.approx(100 * 6 ** 0.5 / 100)
    assert r["p"] == pytest.approx(2 / 2 ** 6)  # all six discordant images one way: 2 x (1/2)^6
    even = compare.agreement(torch.tensor([True, False, True, False]), torch.tensor([False, True, True, False]))
    assert (even["lead"], even["p"]) == (0.0, 1.0)
    same = compare.agreement(right_a, right_a)
    assert (same["only_a"], same["only_b"], same["stderr"], same["p"]) == (0, 0, 0.0, 1.0)


def test_main_scores_both_files_as_evaluate_does(pruned_params: Params, capsys: pytest.CaptureFixture[str]) -> None:
    paths.PARAMS_FILE.write_text(yaml.safe_dump(tiny_dict(data={"root": pruned_params.data.root, "verify": False})))
    compare.main([str(paths.DENSE_MODEL), str(paths.PRUNED_MODEL)])
    out = capsys.readouterr().out.splitlines()
    test = split_of(pruned_params.data, train=False)
    dense, pruned = (score(load_checkpoint(f)[0], test)["accuracy"] for f in (paths.DENSE_MODEL, paths.PRUNED_MODEL))
    assert out[0] == (f"{paths.DENSE_MODEL}: {dense:.2f}%  {paths.PRUNED_MODEL}: {pruned:.2f}%  "
                      f"on {len(test):,} test images")
    right = [predict(load_checkpoint(f)[0], test).argmax(1) == test.labels
             for f in (paths.DENSE_MODEL, paths.PRUNED_MODEL)]
    only_dense, only_pruned = int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum())
    assert out[1].startswith(f"right in one only: {only_dense} (dense.pth), {only_pruned} (pruned.pth); "
                             f"dense.pth leads by {100 * (only_dense - only_pruned) / len(test):+.2f} ± ")
    with pytest.raises(ValueError, match="nope.bin"):
        compare.main([str(paths.DENSE_MODEL), "nope.bin"])
