"""dvc.yaml names every code file a stage runs, so editing one reruns the stage (and nothing else)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _module_file(module: str) -> str | None:
    """stages/x/y.py for stages.x.y, if this repository has it."""
    rel = module.replace(".", "/") + ".py"
    return rel if module.startswith("stages.") and (ROOT / rel).exists() else None


def _imported_files(path: Path) -> set[str]:
    """The stages/**/*.py files that `path` imports, directly or through each other (stages/__init__.py, which
    every stage process runs first, is checked on its own)."""
    found: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from stages.methods import sparse` names a module, `from stages.common.io import x` a file
                modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for rel in filter(None, map(_module_file, modules)):
                if rel not in found:
                    found.add(rel)
                    todo.append(ROOT / rel)
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_dependency(stage: str) -> None:
    module = STAGES[stage]["cmd"].split("-m ")[1].replace(".", "/") + ".py"
    deps = set(STAGES[stage]["deps"])
    assert module in deps
    missing = _imported_files(ROOT / module) - deps
    assert not missing, f"stage {stage} runs {sorted(missing)} but dvc.yaml does not list them as deps"
