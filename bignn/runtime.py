"""The one place that sets a process up: kernels, matmul routing, threads and determinism (setup), the device
(use_device), seeds (seeded). Every entry point calls setup first; nothing here runs at import."""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import random
import sys
from collections.abc import Callable

import numpy as np
import torch

from bignn import kernels, matmul


def pin_kernels(mode: str) -> None:
    """Check that torch runs under `mode`'s kernel switches and route matrix products for portable.

    The switches themselves are set by the launchers before torch is imported (bignn/kernels.py, launch); a
    process started otherwise gets them only if they were in its environment already.
    """
    wanted = kernels.env_for(mode)
    if kernels.switches_in_effect() != wanted:
        raise ValueError(f"kernels: {mode} needs {_shell(wanted)} before torch starts, but this process has "
                         f"{_shell(kernels.switches_in_effect())}; run it as `python -m stages <name>` or "
                         "`python -m commands <name>`, which set them from params.yaml")
    # ATen shows whether its choice came in time (MKL and oneDNN cannot be asked; they read their switch at
    # the same moment, the first op).
    capability = torch.backends.cpu.get_cpu_capability()
    if mode in kernels.CAPABILITY and capability != kernels.CAPABILITY[mode]:
        if mode == "portable" and capability == "DEFAULT":
            raise ValueError("kernels: portable needs a CPU with AVX2; this one has none: set kernels: baseline")
        raise ValueError(f"kernels: {mode} was set after torch had chosen {capability} kernels; start the "
                         f"process with {_shell(wanted)}")
    if mode == "portable":
        matmul.install()


def _shell(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items()) or "none of " + " ".join(kernels.SWITCHES)


def setup(threads: int, kernels: str) -> None:
    """Everything process-wide, once, at the start of an entry point: the kernels checked and, for portable,
    the matrix products routed through oneDNN (this patches torch's `mm`, `addmm` and `bmm` for the rest of the
    process: bignn/matmul.py), the thread count fixed, and deterministic kernels asked for."""
    pin_kernels(kernels)
    # Thread count changes the order of float reductions in some kernels, so it is fixed by params,
    # not taken from the machine.
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # What torch.use_deterministic_algorithms(True) sets, without its import of torch._inductor (only to set
    # the compiler's own flag): that import cost every stage process 1.5 s, a tenth of a tiny stage's run.
    torch.set_deterministic_debug_mode("error")
    # Deterministic mode also fills every new uninitialized tensor with NaN, to expose kernels that read memory
    # they never wrote. None of ours do (the checkpoints' bytes are the same either way: tested), and the fills
    # were ~100 memsets a step, ~7% of a dense training epoch on a 2-core AMD EPYC.
    torch.utils.deterministic.fill_uninitialized_memory = False
    # Adam's moments for pruned (always-zero-gradient) weights decay geometrically into denormal floats,
    # which x86 handles ~100x slower: fine-tuning ran 25% slower without this.
    torch.set_flush_denormal(True)
    # What the imports built (torch alone: a few hundred thousand objects) lives as long as the process: out of
    # the collector's reach, each gc.collect (evaluate's memory measure makes 21) takes ~5 ms instead of ~80.
    gc.freeze()


# cuBLAS picks among several reduction orders unless its workspace is fixed: with this setting its products
# give the same bits on every run (NVIDIA's cuBLAS docs, "Results reproducibility"; torch's
# use_deterministic_algorithms demands it).
CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(name: str, cuda_available: bool | None = None) -> torch.device:
    """The torch.device that params.yaml's `device` names here; `cuda` without a GPU is a ValueError naming
    the param.

    cpu never touches CUDA (not even to ask whether it is there)."""
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("cuda", "auto"):
        raise ValueError(f"device must be one of ['cpu', 'cuda', 'auto'], got {name!r}")
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if available:
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cpu")
    raise ValueError(f"device: cuda, but torch {torch.__version__} sees no CUDA GPU on this machine; set device: "
                     "cpu or auto (e.g. `dvc exp run -S device=auto`)")


def deterministic_cuda() -> None:
    """What the same bytes on the same GPU type take: a fixed cuBLAS workspace (read when cuBLAS starts, so
    before the first product), cuDNN's deterministic algorithms and no benchmarking among them (which picks by
    timing, so by luck), and float32 products in float32 (TF32 would be another recipe than the CPU's).
    Touches no GPU: the flags are read when the first kernel runs. setup() already made torch raise on an
    op that has no deterministic CUDA kernel."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def use_device(name: str) -> torch.device:
    """Resolve params.yaml's `device` (after setup) and, for a GPU, ask for its deterministic kernels."""
    device = resolve_device(name)
    if device.type == "cuda":
        deterministic_cuda()
    return device


def seeded(seed: int) -> torch.Generator:
    """Seed every RNG; returns a generator for data order and augmentation, so those do not depend on how
    many random numbers the model's own layers (dropout) have drawn."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def cli(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print one line naming the cause and exit 1, no traceback.

    A main() without parameters reads only params.yaml: its command line takes --help (the module's
    docstring) and nothing else, so a typo stops with a usage line instead of running the stage and
    overwriting its outputs. A main(argv) parses its own flags."""
    if not inspect.signature(main).parameters:
        spec = main.__globals__.get("__spec__")  # the module main() was defined in, however it was started
        name = getattr(spec, "name", None) or main.__module__
        argparse.ArgumentParser(prog="python -m " + name.replace(".", " ", 1),
                                description=main.__globals__.get("__doc__"),
                                epilog="Reads params.yaml in the current folder.",
                                formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    try:
        main()
    except (ValueError, OSError) as exc:
        # ConfigError, CheckpointError (ValueError) and DownloadError (OSError) name the key or file.
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, whatever the source said
        sys.exit(1)
