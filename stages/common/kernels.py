"""Which SIMD code paths torch's kernel libraries may take, set before torch starts (no torch import here).

The same float ops summed in another order give other bits, so a model trained where a library took its
AVX-512 path differs from one trained on an AVX2 CPU, and MKL takes another path on AMD than on Intel even
when asked for its AVX2 branch (Intel's CNR guide: on non-Intel CPUs that branch falls back to AUTO).

- "portable" (the default): ATen's own kernels and oneDNN's (the convolutions) capped at AVX2, which give the
  same bits on Intel and AMD, and the linear layers' matrix products taken from MKL to oneDNN's AVX2 matmul
  (stages/common/onednn_matmul.py), whose summation order is fixed by the shapes alone. MKL is told its
  COMPATIBLE branch (the one Intel documents as the same on every x86-64 CPU) in case anything still calls it.
  Needs AVX2.
- "baseline": ATen's scalar kernels, oneDNN at SSE4.1 and MKL COMPATIBLE: the same bits on any x86-64 CPU,
  even one without AVX2, about 3.5x slower than portable.
- "native": each library picks its fastest path for this CPU; bits then depend on the CPU.

Each library reads its switch once, at its first kernel call, and a process cannot tell afterwards whether
that call has happened (asking ATen fixes its choice). So the switches go into the environment when the
`stages` package is imported, before any module imports torch (stages/__init__.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

KERNEL_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "portable": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
}
SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
DEFAULT_MODE = "portable"
# The ATen capability each mode ends with; anything else means the switch came too late (or, for portable, a
# CPU without AVX2, where ATen falls back to its scalar kernels).
CAPABILITY = {"portable": "AVX2", "baseline": "DEFAULT"}


def env_for(mode: str) -> dict[str, str]:
    if mode not in KERNEL_ENV:
        raise ValueError(f"kernels: expected one of {sorted(KERNEL_ENV)}, got {mode!r}")
    return KERNEL_ENV[mode]


def mode_in_params(path: str | Path = "params.yaml") -> str:
    """params.yaml's `kernels`, read without the full config (that would import torch through its users).

    A missing file or key means the default; a value that is not a mode is left for the config's own check
    (load_params), which names it.
    """
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return DEFAULT_MODE
    mode = raw.get("kernels", DEFAULT_MODE) if isinstance(raw, dict) else DEFAULT_MODE
    return mode if mode in KERNEL_ENV else DEFAULT_MODE


def set_switches(mode: str) -> bool:
    """Put `mode`'s switches into the environment if torch is not loaded yet; True if they were set.

    native removes them, so a variable left in the shell does not cap a run that asked for native speed.
    """
    if "torch" in sys.modules:
        return False
    for key in SWITCHES:
        os.environ.pop(key, None)
    os.environ.update(env_for(mode))
    return True


def switches_in_effect() -> dict[str, str]:
    return {key: os.environ[key] for key in SWITCHES if key in os.environ}
