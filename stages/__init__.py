"""Pipeline stages: download -> train -> prune -> evaluate (see dvc.yaml)."""
