# Two commands for a newcomer: `make repro` (install, then run the pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Stages run as `python -m stages <name>`: put the venv's python first on PATH for dvc.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"
UV := uv==0.13.9
# DVC reads dvc.yaml and dvc.lock with ruamel.yaml, which since 0.19 installs without its C parser: ~0.1 s a parse
# in pure Python, ~160 parses in one `dvc exp run` of a fresh clone (39 s -> 28 s with the C parser, 2-core AMD
# EPYC). It changes no result, so it stays out of requirements.txt, which the frontier's rows record.
YAML_C := ruamel.yaml.clib==0.2.15

.PHONY: install repro test lint bench exps frontier clean

install: $(VENV)/.installed

# uv installs the ~6 GB of wheels (torch's CUDA libraries among them) in parallel: 38-43 s instead of pip's 90 s
# on a 2-core AMD EPYC. --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, a venv without .pyc files
# recompiles torch in every process (import 4 s -> 9 s).
$(VENV)/.installed: requirements.txt Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(UV)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt $(YAML_C)
	touch $@

repro: install
	$(RUN) dvc repro
	$(RUN) dvc metrics show

test: install
	$(RUN) $(PY) -m pytest

# Every model form side by side in one process (after `make repro`): a table and metrics/bench.json.
bench: install
	$(RUN) $(PY) -m commands bench

# `dvc exp show` has over 100 columns (every metric of every file, every param and dep); this is one row per
# experiment with the params a sweep changes and the headline metrics.
EXP_COLUMNS := Experiment|State|prune\.(amount|seed|finetune_epochs)|channel\.amount|compress\.bits|metrics/(dense|pruned|compressed|channel)\.json:accuracy|metrics/stages/(compress|combine)\.json:times_smaller_than_dense|metrics/stages/compress\.json:bits_per_nonzero|metrics/pruned\.json:latency_b1_ms
exps: install
	$(RUN) dvc exp show --md --drop '.*' --keep '$(EXP_COLUMNS)'

# Every method at three sizes, and the presets (p99 p995 s16 s8 kb8 kb4 kb2), three seeds each as DVC experiments
# (after `make repro`; 30 experiments, Dask tasks): metrics/frontier_sweep.csv, metrics/frontier.png, the best
# per level.
frontier: install
	$(RUN) $(PY) -m commands frontier

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV)
