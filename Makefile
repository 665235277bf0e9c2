# Every target bootstraps .venv with uv on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export LITELLM_LOCAL_MODEL_COST_MAP := True
export UV_LINK_MODE := copy
# Precompile: this machine sets PYTHONDONTWRITEBYTECODE, so without .pyc files every start
# would compile litellm from source (seconds per process).
export UV_COMPILE_BYTECODE := 1

.PHONY: run test lint bench install clean

$(UV):
	python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --python python3
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/aitp serve --dev

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/gateway_overhead.py $(BENCH_ARGS)
	$(PY) bench/budget_race.py $(BENCH_ARGS)
	$(PY) bench/tasks.py $(BENCH_TASKS_ARGS)
	$(PY) bench/kb_and_generation.py $(BENCH_KB_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
