"""dvc.yaml names every code file a stage runs, so editing one reruns the stage (and nothing else)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _imported_files(path: Path) -> set[str]:
    """stages/common/*.py files that `path` imports, directly or through each other."""
    found: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 or node.module == "stages.common":  # from .x import / from stages.common import x
                    names = [node.module] if node.level == 1 and node.module else [a.name for a in node.names]
                elif node.module and node.module.startswith("stages.common."):
                    names = [node.module.rsplit(".", 1)[1]]
            for name in names:
                rel = f"stages/common/{name}.py"
                if (ROOT / rel).exists() and rel not in found:
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
