"""The one place that fixes seeds, threads and the CPU kernels."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable

import numpy as np
import torch

# Which SIMD code paths torch's three kernel libraries may take. The same float ops summed in a different order
# give different bits, so a model trained on an AVX-512 CPU differs from one trained on an AVX2 CPU, and MKL
# picks a different path on AMD than on Intel even at the same ISA. "avx2" caps ATen's own kernels and oneDNN's
# (conv) JIT at AVX2 and asks MKL (linear layers) for its Conditional Numerical Reproducibility AVX2 branch,
# which Intel documents as giving the same results on every CPU that has AVX2. "native" leaves all three free.
KERNEL_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}


def pin_kernels(mode: str) -> None:
    """Set the kernel libraries' ISA switches; call before the process's first tensor op.

    Each library reads its switch once, lazily, at its first kernel call (checked: setting them after
    `import torch` but before any op takes effect), so a stage calls this first thing in run().
    """
    if mode not in KERNEL_ENV:
        raise ValueError(f"kernels: expected one of {sorted(KERNEL_ENV)}, got {mode!r}")
    os.environ.update(KERNEL_ENV[mode])
    # ATen shows whether its choice was already made: on an AVX-512 CPU it would say AVX512 here. (MKL and
    # oneDNN cannot be asked; they read their switch at the same moment, the first op.)
    capability = torch.backends.cpu.get_cpu_capability()
    if mode == "avx2" and capability.startswith("AVX512"):
        raise RuntimeError(f"kernels: avx2 was set after torch had chosen {capability} kernels; "
                           "set ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=AVX2 before starting")


def seed_everything(seed: int, threads: int, kernels: str) -> torch.Generator:
    """Pin the kernels, seed every RNG, fix the thread count and ask torch for deterministic kernels.

    Returns a generator for data order and augmentation, so those do not depend on how many
    random numbers the model's own layers (dropout) have drawn.
    """
    pin_kernels(kernels)
    # Thread count changes the order of float reductions in some kernels, so it is fixed by params,
    # not taken from the machine.
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new uninitialized tensor with NaN, to expose kernels that read memory
    # they never wrote. None of ours do (the checkpoints' bytes are the same either way: tested), and the fills
    # were ~100 memsets a step, ~7% of a dense training epoch on a 2-core AMD EPYC.
    torch.utils.deterministic.fill_uninitialized_memory = False
    # Adam's moments for pruned (always-zero-gradient) weights decay geometrically into denormal floats,
    # which x86 handles ~100x slower: fine-tuning ran 25% slower without this.
    torch.set_flush_denormal(True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def cli(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print one line naming the cause and exit 1, no traceback."""
    try:
        main()
    except (ValueError, OSError) as exc:
        # ConfigError, CheckpointError (ValueError) and DownloadError (OSError) name the key or file.
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, whatever the source said
        sys.exit(1)
