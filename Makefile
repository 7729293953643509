# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: demo test lint typecheck pytest system-deps bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# The integration tests start their own Mosquitto and InfluxDB from these Debian packages,
# and use the machine's PostgreSQL (started, and installed if missing, by ensure-postgres.sh).
# docker-compose (no engine needed) checks docker-compose.yml in tests/unit/test_compose.py.
# Chromium (with a CJK font for the Chinese pages) runs the console's browser tests, tests/e2e/.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto mosquitto-clients"; \
	command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || missing="$$missing influxdb"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root, or install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@scripts/ensure-postgres.sh

demo: $(STAMP)
	$(BIN)/shelterwatch demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

# Every benchmark in bench/, each against the limit it measures in the same run; the table
# goes to docs/performance.md. About 7 minutes on 2 cores.
bench: $(STAMP) system-deps
	$(BIN)/python bench/report.py

# The demo fleet at 10x its data rate through real gateways, collector, Mosquitto and InfluxDB
# for SOAK_MINUTES (30); reports lost, duplicated and late messages and memory and file-handle
# growth, ending with one JSON line (docs/reliability.md).
SOAK_MINUTES ?= 30
soak: $(STAMP) system-deps
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
