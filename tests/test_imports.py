"""Importing does nothing, and the layers only point down.

Every module of the library, the stages and the commands is imported in a fresh interpreter: the environment,
torch's CPU capability and torch's operator table must be what a bare `import torch` leaves. The process set-up
(kernel switches, matmul routing, threads, seeds) is the entry points' one explicit call, bignn.runtime.setup.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
# The library's layers, lowest first: a module imports only from the layers below its own.
LAYERS = [
    {"kernels", "matmul", "paths", "entropy", "model", "data"},
    {"config", "io", "live", "runtime", "training"},
    {"pruning.regrow", "pruning.sparse", "pruning.gradual", "pruning.variational", "channels", "quantize",
     "compression", "download", "codebook"},
    {"pruning.unstructured", "forms", "metrics"},
    {"recipes", "export"},
]
LAYER = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules(package: str) -> list[str]:
    """Every module of a package (its __main__, which runs a launcher, left out)."""
    root = ROOT / package
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in root.rglob("*.py")
                  if p.stem not in ("__init__", "__main__"))


STATE = """
import json, os, torch, warnings
umask = os.umask(0o022)
os.umask(umask)  # read, not changed: a later step reads it again
ops = {name: torch._C._dispatch_dump(name) for name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear")}
print(json.dumps({"env": dict(os.environ), "capability": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
                  "umask": umask, "warnings": [repr(f) for f in warnings.filters], "ops": ops}))
"""


def _states(*steps: str) -> list[dict]:
    """The state after each step of code, in one fresh process (a torch import is 1.5 s of CPU): a step's state
    is what the steps before it and its own left."""
    code = "".join(step + STATE for step in steps)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines()[-len(steps):]]


def _imports_of(modules: list[str]) -> str:
    return "".join(f"import {m}\n" for m in modules)


def _third_party(modules: list[str]) -> list[str]:
    """The other packages these modules import at their top: what they bring (their own warning filters,
    say) is theirs, so the bare state imports them too."""
    ours = ("bignn", "stages", "commands", "tests", "__future__")
    found = set()
    for module in modules:
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            found |= {n for n in names if not n.startswith(ours)}
    return sorted(found)


def test_importing_every_module_changes_nothing() -> None:
    modules = _modules("bignn") + _modules("stages") + _modules("commands")
    assert {"bignn.runtime", "bignn.matmul", "stages.train", "commands.seeds"} <= set(modules)
    others = _third_party(modules)
    assert {"torch", "numpy", "yaml"} <= set(others)
    # The same process before and after our modules: only they can have changed it.
    bare, after = _states(_imports_of(others), _imports_of(modules))
    assert after["env"] == bare["env"]
    assert after["capability"] == bare["capability"]
    assert after["ops"] == bare["ops"]
    for key in ("threads", "deterministic", "umask", "warnings"):
        assert after[key] == bare[key], key


def test_the_set_up_call_is_what_changes_the_process() -> None:
    """The check above could not fail if nothing could change the state it reads: setup does."""
    # Two processes: setup must come before torch's first op, which reading the state is.
    [after] = _states("from bignn import kernels; kernels.set_switches('portable')\n"
                      "from bignn.runtime import setup; setup(1, 'portable')\n")
    [bare] = _states(_imports_of(["bignn.kernels", "bignn.runtime"]))
    assert after["ops"]["aten::mm"] != bare["ops"]["aten::mm"]  # the oneDNN routing is registered
    assert after["env"]["ATEN_CPU_CAPABILITY"] == "avx2" and after["deterministic"]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_library_modules_import_only_the_layers_below() -> None:
    unplaced = [m for m in _modules("bignn") if m.removeprefix("bignn.") not in LAYER]
    assert not unplaced, f"{unplaced}: place each new library module in a layer of LAYERS"
    for module in _modules("bignn"):
        name = module.removeprefix("bignn.")
        imported = _imports(ROOT / (module.replace(".", "/") + ".py"))
        assert not {d for d in imported if d.split(".")[0] in ("stages", "commands")}, module
        deps = {d.removeprefix("bignn.") for d in imported if d.startswith("bignn.")}
        up = sorted(d for d in deps if d in LAYER and LAYER[d] >= LAYER[name])
        assert not up, f"{module} imports {up}, in its own layer or above"


def test_no_stage_imports_another_and_commands_use_the_library() -> None:
    for module in _modules("stages") + _modules("commands"):
        deps = _imports(ROOT / (module.replace(".", "/") + ".py"))
        stages = {d for d in deps if d.startswith("stages") and d != "stages"}
        assert not stages - {"stages.STAGES"}, f"{module} imports {sorted(stages)}"
