"""dvc.yaml names the code every stage runs (its own file and the library folder), so editing it reruns the
stage; and it stays short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _module_file(module: str) -> str | None:
    """stages/x.py or bignn/x/y.py for stages.x or bignn.x.y, if this repository has it (a package: its
    __init__.py)."""
    rel = module.replace(".", "/")
    if not module.startswith(("stages", "bignn")):
        return None
    for candidate in (f"{rel}.py", f"{rel}/__init__.py"):
        if (ROOT / candidate).exists():
            return candidate
    return None


def _imported_files(path: Path) -> set[str]:
    """The stages/ and bignn/ files that `path` imports, directly or through each other."""
    found: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from bignn.pruning import sparse` names a module, `from bignn.io import x` a file
                modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for rel in filter(None, map(_module_file, modules)):
                if rel not in found:
                    found.add(rel)
                    todo.append(ROOT / rel)
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_dependency(stage: str) -> None:
    assert STAGES[stage]["cmd"] == f"python -m stages {stage}"
    module = f"stages/{stage}.py"
    deps = set(STAGES[stage]["deps"])
    # The launcher and its package run first in every stage process.
    assert {module, "stages/__init__.py", "stages/__main__.py"} <= deps
    covered = [d for d in deps if (ROOT / d).is_dir()]
    missing = {f for f in _imported_files(ROOT / module) | _imported_files(ROOT / "stages/__main__.py")
               if f not in deps and not any(f.startswith(d.rstrip("/") + "/") for d in covered)}
    assert not missing, f"stage {stage} runs {sorted(missing)} but dvc.yaml does not list them as deps"


def test_dvc_yaml_reads_on_two_screens() -> None:
    assert len((ROOT / "dvc.yaml").read_text().splitlines()) <= 200


def test_code_folder_deps_hash_the_source_only() -> None:
    """A folder dep (bignn) would hash the bytecode Python leaves beside it, which differs by machine: every
    clone would see every stage changed."""
    ignored = (ROOT / ".dvcignore").read_text().splitlines()
    assert "__pycache__/" in ignored and "*.pyc" in ignored
    assert any((ROOT / d).is_dir() for stage in STAGES.values() for d in stage["deps"])
