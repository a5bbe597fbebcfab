"""Fixtures: a synthetic MNIST-shaped dataset, the tiny trained models, the session's tiny repo (the tiny configs
themselves are tests/tiny.py), so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

# The tests' process is an entry point like a stage: params.yaml's kernel switches go into the environment
# before torch loads (bignn/kernels.py says why), then the one set-up call. Every in-process test runs under the
# default kernels, as the stages' own processes do.
from bignn import kernels

kernels.set_switches("portable")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bignn import paths  # noqa: E402
from bignn.config import Params, params_from_dict, replace  # noqa: E402
from bignn.io import save_checkpoint  # noqa: E402
from bignn.kernels import SWITCHES  # noqa: E402
from bignn.runtime import setup  # noqa: E402
from stages import prune, train  # noqa: E402
from tests.tiny import ROOT, tiny_dict  # noqa: E402

# One thread: the queue test runs two experiments at once on 2 cores (jobs x threads <= cores).
setup(threads=1, kernels="portable")
# No usage report from any `dvc` the tests start: a `dvc init` or an `artifacts get` outside a repo (before any
# repo's core.analytics can say no) left its report in the temp dir for a daemon to send.
os.environ["DVC_NO_ANALYTICS"] = "1"

# ROOT, PARAMS, TINY and tiny_dict: tests/tiny.py.


def committed(path: str) -> str:
    """The file as the last commit holds it: what a workspace `dvc exp run` (which rewrites params.yaml and the
    metrics) leaves alone."""
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def clean_env(**extra: str) -> dict[str, str]:
    """A shell's environment without the kernel switches (plus `extra`), with this checkout importable: what a
    fresh `python -m stages <name>` starts from."""
    return {**{k: v for k, v in os.environ.items() if k not in SWITCHES}, "PYTHONPATH": str(ROOT), **extra}


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 28x28 images whose class is a bright 8x8 square at one of 10 places, plus noise: learnable fast."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        r, c = 2 + 12 * (y // 5), 1 + 5 * (y % 5)
        images[i, r:r + 8, c:c + 8] = 255
    return images, labels


def write_idx(raw: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(images), 28, 28)
                                                     + images.tobytes())
    (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(2000, seed=1))
    write_idx(raw, "t10k", *synthetic_digits(500, seed=2))
    return root


def _template_folder(config: pytest.Config) -> Path:
    """The folder every pytest-xdist worker of this session sees: the session's base temp (a worker's own base
    temp is one folder below it)."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


# The modules that work in a copy of the session's tiny repo (the tiny_template fixture).
END_TO_END = ("test_pipeline.py", "test_queue.py", "test_channel_experiment.py",
              "test_cluster.py", "test_cluster_errors.py", "test_cluster_seeds.py")


# The order pytest-xdist hands modules to its workers (pyproject.toml: --no-loadscope-reorder keeps it): the
# longest end-to-end modules first, so that none of them starts last and runs alone on a half-idle machine (the
# queue test did: 40 s at the end of the run), with a long unit module before them and two after them, which
# the first worker runs while the session's tiny repo is built; the rest after, in file order. The queue module
# holds one test, so its worker is handed the next module at once (xdist tops up a worker with two tests or
# fewer left): an end-to-end one, which waits for the tiny repo anyway (a unit module there waited 110 s behind
# the queue test while the other workers had nothing to run but waits).
FIRST = ("test_stages.py", "test_queue.py", "test_cluster.py", "test_channel_experiment.py", "test_kernels.py",
         "test_config.py", "test_pipeline.py", "test_cluster_seeds.py", "test_cluster_errors.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: each module's own order stays


def _runs_end_to_end(config: pytest.Config) -> bool:
    """Whether the command line names an end-to-end module, or a folder that holds one."""
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        files = [path] if path.is_file() else path.rglob("test_*.py") if path.is_dir() else []
        if any(f.name in END_TO_END for f in files):
            return True
    return False


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process of a run that includes the end-to-end modules, start building the session's
    tiny repo in the background at once: those modules then wait less for it, and the workers run the other
    tests meanwhile."""
    if hasattr(config, "workerinput") or config.option.collectonly or not _runs_end_to_end(config):
        return
    folder = _template_folder(config)
    with open(folder / "tiny-template.build.log", "w") as log:
        config._tiny_template_build = subprocess.Popen(  # type: ignore[attr-defined]
            [sys.executable, "-m", "tests.dvc_repo", str(folder)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A build still running when every test is done (the end-to-end tests were deselected) is stopped, with
    the dvc and stage processes it started."""
    build = getattr(config, "_tiny_template_build", None)
    if build is not None and build.poll() is None:
        os.killpg(build.pid, signal.SIGTERM)
        build.wait()


@pytest.fixture(scope="session")
def tiny_template(request: pytest.FixtureRequest) -> tuple[Path, str]:
    """The session's one reproduced tiny DVC repo and its `dvc repro` output (tests/dvc_repo.py): built once for
    all pytest-xdist workers, in the folder they share (the session's base temp, one above each worker's)."""
    from tests.dvc_repo import template_repo  # it imports this module

    # The build pytest_configure started holds the lock until it is done; if it failed, this builds it again
    # and the failing command shows in the test.
    return template_repo(_template_folder(request.config))


@pytest.fixture
def tiny_params(synthetic_root: Path) -> Params:
    # Synthetic digits do not have MNIST's checksums.
    return params_from_dict(tiny_dict(data={"root": str(synthetic_root), "verify": False}))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, where the stages' relative output paths (models/, metrics/) land."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def pruned_files(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with models/ holding the tiny model trained on the synthetic digits and that model pruned one-shot
    to 90%: trained once per worker (the same bytes every time), copied into each test that needs them."""
    folder = tmp_path_factory.mktemp("pruned")
    params = params_from_dict(tiny_dict(data={"root": str(synthetic_root), "verify": False}))
    model, _ = train.run(params)
    save_checkpoint(folder / paths.DENSE_MODEL, model)
    params = replace(params, prune=replace(params.prune, finetune_epochs=0, amount=0.9))
    model, _, _ = prune.run(params, folder / paths.DENSE_MODEL)
    save_checkpoint(folder / paths.PRUNED_MODEL, model)
    return folder


@pytest.fixture
def pruned_params(tiny_params: Params, in_tmp: Path, pruned_files: Path) -> Params:
    """A trained tiny model in models/, pruned one-shot to 90%; returns the params that pruned it."""
    for path in (paths.DENSE_MODEL, paths.PRUNED_MODEL):
        (in_tmp / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pruned_files / path, in_tmp / path)
    return replace(tiny_params, prune=replace(tiny_params.prune, finetune_epochs=0, amount=0.9))
