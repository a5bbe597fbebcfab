# Two commands for a newcomer: `make repro` (install, then run the pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Stages run as `python -m stages.<name>`: put the venv's python first on PATH for dvc.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: install repro test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

repro: install
	$(RUN) dvc repro
	$(RUN) dvc metrics show

test: install
	$(RUN) $(PY) -m pytest

# Every model form side by side in one process (after `make repro`): a table and metrics/bench.json.
bench: install
	$(RUN) $(PY) -m stages.bench

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV)
