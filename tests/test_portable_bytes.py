"""The default kernels give the same trained bytes on every x86-64 CPU with AVX2, Intel or AMD.

A few training steps of the default network under the default kernels, in a fresh process as a stage runs,
must end with the weights whose MD5 is committed below. CI runs on whatever CPU the machine has that day, so
each run checks another CPU against the same bytes. The MD5 was first computed on an Intel Xeon with AVX-512
and AMX (lscpu `Intel(R) Xeon(R) Processor`, family 6 model 207); docs/reproducibility.md lists the
CPUs that have matched it since.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bignn import matmul
from tests.conftest import clean_env

# 8 steps of the default network (conv [32, 64], FC [1024, 1024], dropout 0.3) with AdamW, one-cycle at 3e-3,
# augmentation (+-2 px, +-10 degrees, no zoom), label smoothing 0.1 and channels-last convs, on seeded random
# images, kernels: portable, 2 threads. The recipe is written out here, not taken from params.yaml: the MD5 is
# of these exact steps, whatever the pipeline's defaults become.
PORTABLE_MD5 = "d1bb37d56af4ecb364fb3936d96b9567"

TRAIN_A_FEW_STEPS = """
import hashlib
from bignn import kernels
kernels.set_switches("portable")  # as the launcher does: the kernel switches go in before torch loads
import torch
from bignn.data import Split
from bignn.model import build_model
from bignn.runtime import seeded, setup
from bignn.training import FitSpec, fit

setup(threads=2, kernels="portable")
gen = seeded(0)
spec = FitSpec(epochs=1, batch_size=128, lr=3e-3, weight_decay=5e-4, label_smoothing=0.1, max_shift=2.0,
               max_rotate=10.0, max_scale=0.0, schedule="onecycle")
images = torch.rand(8 * spec.batch_size, 1, 28, 28, generator=gen)
labels = torch.randint(0, 10, (len(images),), generator=gen)
model = build_model(conv_channels=[32, 64], hidden=[1024, 1024], dropout=0.3)
fit(model, Split(images, labels), None, spec, gen)
weights = b"".join(t.detach().contiguous().numpy().tobytes() for t in model.state_dict().values())
print("kernels portable capability", torch.backends.cpu.get_cpu_capability())
print("md5", hashlib.md5(weights).hexdigest())
"""


def _run(code: str, cwd: Path, **env: str) -> list[str]:
    """The lines `code` prints in a fresh process started from a shell without the kernel switches."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, check=True, timeout=300).stdout.splitlines()


def _sections(scripts: dict[str, str], cwd: Path, **env: str) -> dict[str, list[str]]:
    """What each script prints, the scripts run one after another in one fresh process (a torch import is 1.5 s
    of CPU): each starts as if alone (switches, set-up, its own seeds), and a line marks where it starts."""
    code = "".join(f"print('--- {name}')\n{script}" for name, script in scripts.items())
    out: dict[str, list[str]] = {}
    for line in _run(code, cwd, **env):
        if line.startswith("--- ") and line[4:] in scripts:
            out[line[4:]] = []
        elif out:
            out[next(reversed(out))].append(line)
    assert list(out) == list(scripts), out
    return out


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The default training steps, the elastic warp and the int8 file, each script's printed lines. No params.yaml
    in the folder: the default kernels. MKL_VERBOSE prints a line for every MKL call."""
    return _sections({"train": TRAIN_A_FEW_STEPS, "elastic": ELASTIC_WARP, "int8": QUANTIZE_A_SMALL_MODEL},
                     tmp_path_factory.mktemp("fresh"), MKL_VERBOSE="1")


def _md5(lines: list[str]) -> str:
    """What follows "md5 " on the line that starts with it."""
    return next(line.split(maxsplit=1)[1] for line in lines if line.startswith("md5 "))


def test_a_few_default_training_steps_give_the_committed_bytes(fresh: dict[str, list[str]]) -> None:
    lines = fresh["train"]
    assert "kernels portable capability AVX2" in lines
    # MKL's float products take another path on AMD than on Intel: under portable nothing may reach MKL.
    assert not [line for line in lines if line.startswith("MKL_VERBOSE") and "NThr" in line]
    md5 = _md5(lines)
    assert md5 == PORTABLE_MD5, (
        f"the default kernels trained other bytes on this CPU ({md5}): see docs/reproducibility.md")


# One batch of random images through the student's augmentation with distill.elastic 8 (affine warp, zoom and the
# elastic field, whose Gaussian blur is two matrix products), kernels: portable, 2 threads. First computed on an
# AMD EPYC Zen 3 (lscpu `AMD EPYC`); CI on another CPU checks it there.
ELASTIC_MD5 = "8734f689d4d4cc07ddf6990ee8f766f6"

ELASTIC_WARP = """
import hashlib
from bignn import kernels
kernels.set_switches("portable")
import torch
from bignn.data import augment
from bignn.runtime import setup

setup(threads=2, kernels="portable")
gen = torch.Generator().manual_seed(0)
images = torch.rand(128, 1, 28, 28, generator=gen)
bent = augment(images, 2.0, 10.0, gen, 0.1, 8.0, 4.0)
print("md5", hashlib.md5(bent.numpy().tobytes()).hexdigest())
"""


def test_the_elastic_warp_reaches_no_mkl_product_and_gives_the_committed_bytes(fresh: dict[str, list[str]]) -> None:
    lines = fresh["elastic"]
    assert not [line for line in lines if line.startswith("MKL_VERBOSE") and "NThr" in line]
    assert _md5(lines) == ELASTIC_MD5, "the elastic warp gave other bytes on this CPU: see docs/reproducibility.md"


def _sequential_fma(x: np.ndarray, w: np.ndarray, block: int) -> np.ndarray:
    """x @ w.T summed the way oneDNN's AVX2 matmul sums: along k, one rounding per multiply-add, in blocks of
    `block` whose partial sums are added to the running result in turn. float64 holds each product exactly."""
    out = np.zeros((x.shape[0], w.shape[0]), np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for lo in range(0, x.shape[1], block):
        part = np.zeros_like(out)
        for k in range(lo, min(lo + block, x.shape[1])):
            part = (part + np.outer(x64[:, k], w64[:, k])).astype(np.float32)
        out = out + part
    return out


def test_routed_products_sum_in_an_order_fixed_by_the_shapes() -> None:
    """Why the routed linear layers are portable: each output is summed along k in blocks of 1024, whatever
    the thread count (and so whatever the cache sizes, which oneDNN's AVX2 f32 matmul does not consult)."""
    matmul.install()  # what runtime.setup does under portable; the tests' process runs portable
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    try:
        for m, k, n in ((128, 3136, 1024), (128, 1024, 1024), (1024, 128, 3136)):
            x, w = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
            results = []
            for t in (1, 2, 3):
                torch.set_num_threads(t)
                results.append(torch.nn.functional.linear(x, w).numpy())
            assert all(np.array_equal(results[0], r) for r in results[1:]), (m, k, n)
            rows, cols = slice(0, 8), slice(0, 48)
            expected = _sequential_fma(x.numpy()[rows], w.numpy()[cols], block=1024)
            assert np.array_equal(results[0][rows, cols], expected), (m, k, n)
    finally:
        torch.set_num_threads(threads)


def test_routed_products_equal_torchs_own_to_rounding() -> None:
    """mm, addmm (with alpha and beta), bmm (short and long sums), other dtypes and empty sides."""
    matmul.install()
    gen = torch.Generator().manual_seed(1)
    a, b, bias = torch.randn(5, 40, generator=gen), torch.randn(40, 7, generator=gen), torch.randn(7, generator=gen)
    expected = a.double() @ b.double()
    assert torch.allclose((a @ b).double(), expected, atol=1e-4)
    assert torch.allclose(torch.addmm(bias, a, b).double(), expected + bias.double(), atol=1e-4)
    assert torch.allclose(torch.addmm(bias, a, b, beta=0.5, alpha=2).double(), 2 * expected + 0.5 * bias.double(),
                          atol=1e-4)
    assert torch.equal(torch.addmm(torch.full((7,), float("nan")), a, b, beta=0), a @ b)
    for k in (3, 40):  # the affine grid's short sums, and a long one through oneDNN per batch item
        x, y = torch.randn(4, 6, k, generator=gen), torch.randn(4, k, 5, generator=gen)
        assert torch.allclose(torch.bmm(x, y).double(), torch.einsum("bik,bkj->bij", x.double(), y.double()),
                              atol=1e-4)
    assert torch.equal(torch.zeros(3, 0) @ torch.zeros(0, 4), torch.zeros(3, 4))
    assert (torch.arange(6).view(2, 3) @ torch.arange(6).view(3, 2)).tolist() == [[10, 13], [28, 40]]


# The range coder's gap models (every line density of the big FC layers' 1024- and 3136-slot lines, each coding
# the same gaps) and its choice of axis for one mask: the same on every CPU, or a file written on one CPU decodes
# to garbage on another. numpy's SIMD power and log differ in the last bit between its AVX-512 and AVX2 paths
# (with them this MD5 moved with the numpy level); the coder uses neither. Computed first on the Intel Xeon above.
CODER_MD5 = "958602ddf76b07305717efe712d834bd"

CODE_EVERY_GAP_MODEL = """
import hashlib
import numpy as np
from bignn import entropy
md5 = hashlib.md5()
for length in (1024, 3136):
    for count in range(1, length):
        enc = entropy.Encoder()
        enc.encode(np.arange(0, length, 16, dtype=np.int32), entropy._geometric(count, length))
        md5.update(enc.get_compressed().tobytes())
rng = np.random.default_rng(0)
mask = rng.random((64, 3136)) < np.geomspace(0.001, 0.9, 64)[:, None]
print("md5", md5.hexdigest(), "axis", entropy.best_axis(mask), entropy.best_axis(mask.T))
"""

# numpy's dispatch levels above its baseline, each switched off in turn: this CPU pinned below its native level.
NUMPY_LEVELS = ("AVX512_SPR", "AVX512_ICL", "X86_V4", "X86_V3")


def test_the_range_coders_models_are_the_same_at_every_numpy_level(tmp_path: Path) -> None:
    from numpy._core._multiarray_umath import __cpu_features__

    here = [level for level in NUMPY_LEVELS if __cpu_features__.get(level)]
    results = {_md5(_run(CODE_EVERY_GAP_MODEL, tmp_path, NPY_DISABLE_CPU_FEATURES=" ".join(here[:k])))
               for k in range(len(here) + 1)}
    assert results == {f"{CODER_MD5} axis 0 1"}, f"numpy levels {here} on this CPU coded {results}"


# The channel model's int8 file for a seeded small model calibrated on seeded images. PyTorch's "x86" quantized
# engine packs the int8 convolutions for oneDNN on CPUs with AVX-512 VNNI and for fbgemm elsewhere, and the file
# held other bytes on the two (ebcc36c7... on the Intel Xeon above, where the stage's file differed from an AMD
# Zen 3's); bignn/quantize.py asks for fbgemm on every CPU. Computed first on the Intel Xeon above.
INT8_MD5 = "2ff07a6751d609bc4ae3ea04928dc5e5"

QUANTIZE_A_SMALL_MODEL = """
import hashlib
from bignn import kernels
kernels.set_switches("portable")
import torch
from bignn.model import build_model
from bignn.quantize import int8_bytes, quantize_int8
from bignn.runtime import seeded, setup
from bignn.training import prepare
setup(threads=2, kernels="portable")
gen = seeded(0)
model = prepare(build_model(conv_channels=[8, 16], hidden=[256, 256], dropout=0.0))
int8 = quantize_int8(model, torch.rand(512, 1, 28, 28, generator=gen))
print("md5", hashlib.md5(int8_bytes(int8, model.model_args)).hexdigest())
"""


def test_the_int8_file_is_the_same_whatever_the_cpus_int8_extensions(fresh: dict[str, list[str]]) -> None:
    md5 = _md5(fresh["int8"])
    assert md5 == INT8_MD5, f"the int8 file has other bytes on this CPU ({md5}): see docs/reproducibility.md"
