# Two commands do all set-up on a machine that has only Python 3.11+:
#   make demo   label 693 real utterances (built-in emulator unless ANTHROPIC_API_KEY is set)
#   make test   lint, type-check and run the whole test suite (2 workers; a module stays on one,
#               so each Prefect server stack or test harness starts once per worker at most)
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test lint setup clean bench

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --compile-bytecode
	@# bytecode for our own packages too, even where PYTHONDONTWRITEBYTECODE is set (CI, containers)
	$(VENV)/bin/python -m compileall -q -j 0 halfrate halfrate_emulator cli flows tasks
	@touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/halfrate demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache

# ---- Local Prefect stack (docs/deploy.md) --------------------------------------------------
#   make prefect-up deploy   real Prefect server (SQLite; `halfrate server start`, the server
#                            `halfrate run` reuses), process work pool + worker, automations,
#                            and the emulator when ANTHROPIC_API_KEY is unset (EMULATOR=0: use the
#                            Secret block instead); then every deployment
#   make prefect-down        stop what prefect-up started (by PID; the server: halfrate server stop)
PREFECT_PORT ?= 4200
EMULATOR_PORT ?= 4280
# EMULATOR=auto starts the emulator when ANTHROPIC_API_KEY is unset; EMULATOR=0 never does.
EMULATOR ?= auto
STACK := $(CURDIR)/.prefect
PREFECT_STACK_ENV := PREFECT_HOME=$(STACK) PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api \
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	PREFECT_SERVER_ANALYTICS_ENABLED=false
POOL := halfrate-local

.PHONY: prefect-up prefect-down deploy

# bash for job control: a worker started without `set -m` ignores SIGTERM (prefect.md 3.6).
prefect-up deploy prefect-down: SHELL := /bin/bash

prefect-up: setup
	@mkdir -p $(STACK)
	@set -euo pipefail; export $(PREFECT_STACK_ENV); PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	alive() { [[ -f "$(STACK)/$$1.pid" ]] && kill -0 "$$(cat "$(STACK)/$$1.pid")" 2>/dev/null; }; \
	wait_for() { for _ in $$(seq 300); do curl -sf "$$2" >/dev/null && return 0; sleep 0.2; done; \
		echo "$$1 did not come up; see $(STACK)/$$1.log" >&2; return 1; }; \
	halfrate server start --port $(PREFECT_PORT); \
	set -m; \
	prefect work-pool inspect $(POOL) >/dev/null 2>&1 || prefect work-pool create $(POOL) --type process; \
	python -m flows.automations; \
	if [[ -n "$${ANTHROPIC_API_KEY:-}" ]]; then echo "worker uses the real API (ANTHROPIC_API_KEY is set)"; \
	elif [[ "$(EMULATOR)" == 0 ]]; then echo "worker uses the real API with the key from the Secret block anthropic-api-key"; \
	else \
		if ! alive emulator; then \
			nohup halfrate emulator --port $(EMULATOR_PORT) --data-dir "$(STACK)/emulator" \
				> "$(STACK)/emulator.log" 2>&1 & echo $$! > "$(STACK)/emulator.pid"; fi; \
		wait_for emulator "http://127.0.0.1:$(EMULATOR_PORT)/_emulator/health"; \
		export ANTHROPIC_BASE_URL="http://127.0.0.1:$(EMULATOR_PORT)" ANTHROPIC_API_KEY=emulator-local; \
		echo "worker uses the emulator at $$ANTHROPIC_BASE_URL (no ANTHROPIC_API_KEY set)"; fi; \
	if ! alive worker; then \
		export PREFECT_LOGGING_EXTRA_LOGGERS=halfrate; \
		nohup prefect worker start --pool $(POOL) --name $(POOL)-worker > "$(STACK)/worker.log" 2>&1 & \
		echo $$! > "$(STACK)/worker.pid"; fi; \
	printf 'export %s\nexport PATH="%s:$$PATH"\n' "$(PREFECT_STACK_ENV)" "$(CURDIR)/$(VENV)/bin" > "$(STACK)/env"; \
	echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)  (logs and PIDs in $(STACK)/; next: make deploy, then source $(STACK)/env)"

deploy: setup
	@export $(PREFECT_STACK_ENV); cd $(CURDIR) && $(VENV)/bin/prefect --no-prompt deploy --all

prefect-down:
	@for name in worker emulator; do \
		pidfile="$(STACK)/$$name.pid"; [[ -f "$$pidfile" ]] || continue; pid=$$(cat "$$pidfile"); \
		if kill -TERM "$$pid" 2>/dev/null; then \
			for _ in $$(seq 100); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.2; done; \
			kill -0 "$$pid" 2>/dev/null && { echo "$$name ($$pid) ignored SIGTERM; sending SIGKILL"; kill -KILL "$$pid"; }; \
			echo "stopped $$name ($$pid)"; fi; \
		rm -f "$$pidfile"; done; \
	PREFECT_HOME=$(STACK) $(VENV)/bin/halfrate server stop
