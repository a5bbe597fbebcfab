"""The kernels param: each process the launchers start (`python -m stages <name>`, `python -m commands <name>`)
takes params.yaml's kernel switches before torch loads (bignn/kernels.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bignn.config import ConfigError, Params, params_from_dict
from bignn.kernels import KERNEL_ENV, SWITCHES
from tests.conftest import clean_env
from tests.tiny import tiny_dict

ROOT = Path(__file__).resolve().parents[1]
# Every module a user or DVC starts: `python -m stages <name>` and `python -m commands <name>`.
ENTRY_POINTS = sorted(f"{pkg}.{p.stem}" for pkg in ("stages", "commands") for p in (ROOT / pkg).glob("*.py")
                      if p.stem not in ("__init__", "__main__"))
# The package's own launcher (its __main__.py, as `python -m <package> <name>` runs it), with the launcher's last
# step, running the named module as __main__, replaced by importing every module of the package in turn and
# reading the switches after each: the state right after each module's imports, before any of its own work.
# One process per package: each process imports torch (1.5-3 s), twenty of them were a sixth of the suite.
LAUNCH = """
import json, os, runpy, sys
from pathlib import Path
def each(name, **kw):
    seen = {{}}
    for module in {modules!r}:
        __import__(module)
        seen[module] = [os.environ.get(k, "-") for k in {switches!r}]
    import torch
    print(json.dumps({{"capability": torch.backends.cpu.get_cpu_capability(), "seen": seen}}))
runpy.run_module = each
sys.argv = ["-m", {first!r}]
runpy.run_path(str(Path({pkg!r}) / "__main__.py"), run_name="__main__")
"""
REPORT = "import os, torch; print(torch.backends.cpu.get_cpu_capability(), *(os.environ.get(k, '-') for k in {}))"


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh process started from such a shell."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=300)


def _params_file(folder: Path, kernels: str, **sections: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump({**tiny_dict(**sections), "kernels": kernels}))


def test_kernels_param_must_be_known() -> None:
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["kernels"] == "portable"
    for mode in ("portable", "baseline", "native"):
        assert params_from_dict({**tiny_dict(), "kernels": mode}).kernels == mode
    with pytest.raises(ConfigError, match=r"kernels must be portable, baseline or native, got 'avx2'"):
        params_from_dict({**tiny_dict(), "kernels": "avx2"})


def test_every_entry_point_is_pinned_before_torch_loads(tmp_path: Path) -> None:
    """baseline caps ATen below its native level on any CPU: an entry point whose launcher set the switches too
    late (its package's __init__ or __main__ importing torch first, or its module resetting them) would show
    the machine's own capability (AVX2 or AVX512) instead of DEFAULT, or other switches."""
    _params_file(tmp_path, "baseline")
    expected = [KERNEL_ENV["baseline"][k] for k in SWITCHES]
    procs = {}
    for pkg in ("stages", "commands"):
        modules = [name for name in ENTRY_POINTS if name.startswith(f"{pkg}.")]
        code = LAUNCH.format(modules=modules, switches=SWITCHES, first=modules[0].split(".")[1], pkg=str(ROOT / pkg))
        procs[pkg] = (modules, subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for pkg, (modules, proc) in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (pkg, err[-2000:])
        report = json.loads(out.strip().splitlines()[-1])
        assert report["capability"] == "DEFAULT", pkg
        assert report["seen"] == {name: expected for name in modules}, pkg
    assert {"stages.train", "stages.prune", "stages.compress", "stages.evaluate", "commands.predict",
            "commands.bench", "commands.profile", "commands.sweep"} <= set(ENTRY_POINTS)


def test_a_module_started_without_the_launcher_is_refused(tmp_path: Path) -> None:
    """`python -m stages.train` skips the launcher: under portable, setup says how to start it instead."""
    _params_file(tmp_path, "portable")
    done = subprocess.run([sys.executable, "-m", "stages.train"], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert "run it as `python -m stages <name>`" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_stage_mains_end_on_the_pinned_kernels(pruned_params: Params, in_tmp: Path) -> None:
    """The stage that once pinned too late (compress) and one that trains, run as DVC runs them, from a shell
    without the switches: torch must end on baseline's capability after main()."""
    _params_file(in_tmp, "baseline", data={"root": pruned_params.data.root, "verify": False})
    for stage in ("compress", "prune"):
        done = _python("import sys, runpy; from bignn.kernels import launch; sys.argv = ['x', '" + stage + "']; "
                       "runpy.run_module('stages', run_name='__main__'); " + REPORT.format(SWITCHES), in_tmp)
        assert done.returncode == 0, (stage, done.stderr[-2000:])
        assert done.stdout.splitlines()[-1] == "DEFAULT default SSE41 COMPATIBLE", stage
    assert (in_tmp / "metrics/stages/compress.json").exists() and (in_tmp / "metrics/stages/prune.json").exists()


def test_switches_that_come_too_late_are_refused(tmp_path: Path) -> None:
    """A process that ran a tensor op before `stages` was imported cannot be pinned any more: it says so."""
    done = _python("import torch; torch.ones(4).sum(); from bignn.runtime import pin_kernels; "
                   "pin_kernels('portable')", tmp_path)
    assert done.returncode != 0
    assert "kernels: portable needs ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=COMPATIBLE " \
           "before torch starts" in done.stderr


def test_native_clears_switches_left_in_the_shell(tmp_path: Path) -> None:
    """kernels: native means the machine's own paths, even if the shell still caps them."""
    machine = _python(REPORT.format(SWITCHES), tmp_path).stdout.split()[0]
    _params_file(tmp_path, "native")
    done = _python("from bignn.kernels import mode_in_params, set_switches; set_switches(mode_in_params()); "
                   + REPORT.format(SWITCHES), tmp_path, ATEN_CPU_CAPABILITY="default", MKL_CBWR="COMPATIBLE")
    assert done.stdout.split() == [machine, "-", "-", "-"]


def test_every_computing_stage_pins_the_kernels() -> None:
    """The kernels param is only honest if each stage that does float math checks it and DVC tracks it."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "prune", "channel", "combine", "compress", "distill", "evaluate", "export"):
        assert "kernels" in stages[name]["params"], name
        assert {"stages/__main__.py", "bignn"} <= set(stages[name]["deps"]), name
        assert "setup(params.threads, params.kernels)" in (ROOT / "stages" / f"{name}.py").read_text(), name
