"""The kernels param: the same SIMD code paths on every CPU, set before torch's first op (runtime.pin_kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.common.config import ConfigError, params_from_dict
from stages.common.runtime import KERNEL_ENV
from tests.conftest import tiny_dict

ROOT = Path(__file__).resolve().parents[1]

# Products of the shapes the big CNN's layers multiply, a conv and a linear layer's weight gradient. On a 2-core
# AMD EPYC (Zen 2) the 128x1024 @ 1024x10 product already has other bits under MKL's AVX2 branch than natively.
FINGERPRINT = """
import hashlib, os, sys
import torch
if sys.argv[1] != "none":
    from stages.common.runtime import seed_everything
    seed_everything(0, 1, sys.argv[1])  # what every stage's run() does first
torch.manual_seed(0)
outs = []
for m, k, n in [(128, 3136, 1024), (128, 1024, 1024), (128, 1024, 10)]:
    outs.append(torch.randn(m, k) @ torch.randn(k, n))
outs.append(torch.nn.functional.conv2d(torch.randn(8, 32, 14, 14), torch.randn(64, 32, 3, 3), padding=1))
lin = torch.nn.Linear(1024, 256)
lin(torch.randn(128, 1024)).square().sum().backward()
outs.append(lin.weight.grad)
print(torch.backends.cpu.get_cpu_capability(), os.environ.get("MKL_CBWR"),
      hashlib.md5(b"".join(o.detach().numpy().tobytes() for o in outs)).hexdigest())
"""


def _fingerprint(mode: str, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV["avx2"]}
    out = subprocess.run([sys.executable, "-c", FINGERPRINT, mode], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_pinning_in_run_equals_setting_the_switches_before_the_process_starts() -> None:
    """The libraries read their switches lazily: seed_everything, called after `import torch`, must be in time."""
    from_start = _fingerprint("none", KERNEL_ENV["avx2"])
    pinned = _fingerprint("avx2", {})
    assert pinned == from_start
    capability, cbwr, _ = pinned.split()
    assert capability in ("AVX2", "DEFAULT") and cbwr == "AVX2"
    # native leaves the machine's own choice alone, whatever it is.
    assert _fingerprint("native", {}) == _fingerprint("none", {})


def test_kernels_param_must_be_known() -> None:
    assert params_from_dict(tiny_dict()).kernels == "avx2"
    assert params_from_dict({**tiny_dict(), "kernels": "native"}).kernels == "native"
    with pytest.raises(ConfigError, match=r"kernels must be avx2 or native, got 'avx512'"):
        params_from_dict({**tiny_dict(), "kernels": "avx512"})


def test_every_computing_stage_pins_the_kernels() -> None:
    """The kernels param is only honest if each stage that does float math pins it and DVC tracks it."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "prune", "compress", "distill", "evaluate"):
        assert "kernels" in stages[name]["params"], name
        source = (ROOT / "stages" / f"{name}.py").read_text()
        assert "params.kernels" in source, name
