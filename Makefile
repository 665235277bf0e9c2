# Every target bootstraps .venv with uv on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# pip puts uv beside whichever interpreter ran it (a pyenv prefix, a venv, ~/.local), so the
# bootstrap never guesses a path: it runs uv as a module of the python3 that installed it.
BOOT_PY ?= python3
UV := $(BOOT_PY) -m uv
export LITELLM_LOCAL_MODEL_COST_MAP := True
export UV_LINK_MODE := copy
# Precompile: this machine sets PYTHONDONTWRITEBYTECODE, so without .pyc files every start
# would compile litellm from source (seconds per process).
export UV_COMPILE_BYTECODE := 1

.PHONY: run test lint bench install uv browser clean

uv:
	@$(UV) --version >/dev/null 2>&1 || $(BOOT_PY) -m pip install --quiet uv || $(BOOT_PY) -m pip install --quiet --user uv
	@$(UV) --version

$(VENV)/.installed: pyproject.toml uv.lock
	@$(MAKE) --no-print-directory uv
	$(UV) sync --frozen --extra dev --python $(BOOT_PY)
	touch $@

install: $(VENV)/.installed browser

# The browser runner and the console tests drive Debian's Chromium; Playwright's own browser
# download cannot work here. CJK fonts so that Chinese pages render in screenshots.
browser:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium fonts-wqy-microhei \
	  || { $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium fonts-wqy-microhei; }; \
	fi

run: install
	$(VENV)/bin/aitp serve --dev

# Two steps: the suite in parallel workers (each test file in one worker, so its servers are started
# once), then the tests that hold wall-clock budgets, alone. Both always run; either failing fails.
# Exit code 5 ("no tests collected") is fine when PYTEST_ARGS selects only one kind.
TEST_WORKERS ?= 3
test: install
	@status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS) || { rc=$$?; [ $$rc = 5 ] || status=$$rc; }; \
	$(PY) -m pytest -m serial $(PYTEST_ARGS) || { rc=$$?; [ $$rc = 5 ] || status=$$rc; }; \
	exit $$status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/gateway_overhead.py $(BENCH_ARGS)
	$(PY) bench/budget_race.py $(BENCH_ARGS)
	$(PY) bench/tasks.py $(BENCH_TASKS_ARGS)
	$(PY) bench/kb_and_generation.py $(BENCH_KB_ARGS)
	$(PY) bench/mcp_vs_rest.py $(BENCH_MCP_ARGS)
	$(PY) bench/browser_pool.py $(BENCH_BROWSER_ARGS)
	$(PY) bench/console.py $(BENCH_CONSOLE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
