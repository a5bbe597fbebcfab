"""Which SIMD code paths torch's kernel libraries may take (no torch import here: this runs before torch).

The same float ops summed in another order give other bits, so a model trained where a library took its
AVX-512 path differs from one trained on an AVX2 CPU, and MKL takes another path on AMD than on Intel even
when asked for its AVX2 branch (Intel's CNR guide: on non-Intel CPUs that branch falls back to AUTO).

- "portable" (the default): ATen's own kernels and oneDNN's (the convolutions) capped at AVX2, which give the
  same bits on Intel and AMD, and the linear layers' matrix products taken from MKL to oneDNN's AVX2 matmul
  (bignn/matmul.py), whose summation order is fixed by the shapes alone. MKL is told its COMPATIBLE branch
  (the one Intel documents as the same on every x86-64 CPU) in case anything still calls it. Needs AVX2.
- "baseline": ATen's scalar kernels, oneDNN at SSE4.1 and MKL COMPATIBLE: the same bits on any x86-64 CPU,
  even one without AVX2, about 3.5x slower than portable.
- "native": each library picks its fastest path for this CPU; bits then depend on the CPU.

Each library reads its switch from the environment once, at its first kernel call, and a process cannot tell
afterwards whether that call has happened (asking ATen fixes its choice). So the switches must be in the
environment before the process imports torch: the launchers `python -m stages <name>` and
`python -m commands <name>` put them there (launch), and runtime.setup checks that they did.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

KERNEL_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "portable": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
}
SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
# The ATen capability each mode ends with; anything else means the switch came too late (or, for portable, a
# CPU without AVX2, where ATen falls back to its scalar kernels).
CAPABILITY = {"portable": "AVX2", "baseline": "DEFAULT"}


def env_for(mode: str) -> dict[str, str]:
    if mode not in KERNEL_ENV:
        raise ValueError(f"kernels must be one of {sorted(KERNEL_ENV)}, got {mode!r}")
    return KERNEL_ENV[mode]


def mode_in_params(path: str | Path = "params.yaml") -> str | None:
    """params.yaml's `kernels`, read without the full config (that would import torch through its users).

    None where the file, the key or a known value is missing: the config's own check (load_params) names it.
    """
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    mode = raw.get("kernels") if isinstance(raw, dict) else None
    return mode if mode in KERNEL_ENV else None


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


def launch(package: str, names: list[str], argv: list[str]) -> None:
    """`python -m <package> <name> [args]`: params.yaml's kernel switches into the environment, then the
    module <package>.<name> run as __main__ (what `python -m <package>.<name>` would do, a step later)."""
    if not argv or argv[0] not in names:
        got = repr(argv[0]) if argv else "nothing"
        print(f"usage: python -m {package} <name> [args]; name is one of {', '.join(names)}, got {got}",
              file=sys.stderr)
        sys.exit(2)
    mode = mode_in_params()
    if mode is not None:  # a bad or missing value: the stage's load_params names it
        set_switches(mode)
    sys.argv = [f"python -m {package} {argv[0]}", *argv[1:]]
    runpy.run_module(f"{package}.{argv[0]}", run_name="__main__", alter_sys=True)
