"""The `device` param: cpu by default, cuda or auto on request; what a GPU run sets up, and where each stage
sends it, checked on the CPU (no GPU here: the CUDA kernels themselves are docs/gpu.md's script's to check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from bignn import paths, recipes, runtime
from bignn.config import Params, replace
from bignn.io import save_checkpoint
from bignn.pruning import gradual
from bignn.training import fit
from stages import channel, combine, distill, prune, train
from tests.conftest import clean_env
from tests.tiny import ROOT, tiny_dict

GPU = torch.device("cuda")


def test_cpu_never_asks_for_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(*_: object) -> bool:
        raise AssertionError("device: cpu asked CUDA whether it is there")

    monkeypatch.setattr(torch.cuda, "is_available", no)
    assert runtime.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("name", "available", "expected"), [
    ("auto", False, "cpu"), ("auto", True, "cuda"), ("cuda", True, "cuda")])
def test_auto_and_cuda_resolve_to_what_torch_sees(name: str, available: bool, expected: str) -> None:
    assert runtime.resolve_device(name, cuda_available=available).type == expected


def test_cuda_without_a_gpu_is_one_line_naming_the_param() -> None:
    with pytest.raises(ValueError, match=r"^device: cuda, but torch .* sees no CUDA GPU .*set device: cpu or auto"):
        runtime.resolve_device("cuda", cuda_available=False)


def test_deterministic_cuda_fixes_the_workspace_and_the_algorithms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    # torch's defaults where they differ from what a GPU run needs (cuBLAS' flag is a module attribute
    # monkeypatch cannot restore: set back by hand)
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = True, False, True, True
    try:
        runtime.deterministic_cuda()
        after = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    finally:
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = before
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == runtime.CUBLAS_WORKSPACE
    assert after == (False, True, False, False)
    # setup() asked torch to raise on any op without a deterministic kernel, CUDA's included.
    assert torch.get_deterministic_debug_mode() == 2


def test_a_stage_asked_for_cuda_without_one_stops_before_any_output(tmp_path: Path) -> None:
    """The stage process itself: one line naming the param, exit 1, nothing written. CUDA_VISIBLE_DEVICES=""
    hides a GPU where there is one, so this machine's answer is the same everywhere."""
    raw = tiny_dict(device="cuda", data={"root": str(ROOT / "data")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    res = subprocess.run([sys.executable, "-m", "stages", "train"], cwd=tmp_path, capture_output=True, text=True,
                         env=clean_env(CUDA_VISIBLE_DEVICES=""), timeout=120)
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().startswith("error: device: cuda, but torch") and res.stderr.count("\n") == 1
    assert not (tmp_path / paths.DENSE_MODEL).exists() and not (tmp_path / "metrics").exists()


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """The device each fit() of a stage is handed (then run on the CPU, the only device here)."""
    seen: list[torch.device] = []

    def spy(*args: Any, device: torch.device, **kwargs: Any) -> Any:
        seen.append(device)
        return fit(*args, **kwargs)

    monkeypatch.setattr(recipes, "fit", spy)
    monkeypatch.setattr(gradual, "fit", spy)
    return seen


def test_every_training_stage_hands_its_device_to_the_fit(tiny_params: Params, in_tmp: Path,
                                                          fits: list[torch.device]) -> None:
    model, _ = train.run(tiny_params, device=GPU)
    save_checkpoint(paths.DENSE_MODEL, model)
    prune.run(tiny_params, device=GPU)
    model, _ = channel.run(tiny_params, device=GPU)
    save_checkpoint(paths.CHANNEL_MODEL, model)
    distill.run(replace(tiny_params, distill=replace(tiny_params.distill, alpha=0.0)), device=GPU)
    combine.run(tiny_params, device=GPU)
    assert fits == [GPU] * 5


def test_fit_brings_the_model_back_to_the_cpu(tiny_params: Params) -> None:
    model, _ = train.run(tiny_params, device=torch.device("cpu"))
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_the_stages_that_train_or_score_set_up_their_device() -> None:
    for name in ("train", "prune", "compress", "channel", "distill", "combine", "evaluate"):
        assert "use_device(params.device)" in (ROOT / "stages" / f"{name}.py").read_text(), name


def test_dvc_yaml_reruns_a_stage_when_its_device_changes() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    uses = {name for name, stage in stages.items() if "device" in stage.get("params", [])}
    assert uses == {"train", "prune", "compress", "channel", "distill", "combine", "evaluate"}
