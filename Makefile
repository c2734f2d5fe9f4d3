# Two entry points a new user needs: `make serve` and `make test`.
# Each creates the virtual environment on first use (python3 -m venv) and
# installs the project into it; later runs reuse it.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: setup serve test lint browser-deps
setup: $(STAMP)

serve: $(STAMP)
	$(BIN)/marionette serve

# Debian's Chromium drives the browser tests; installed once, as root.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy realtime streaming

test: $(STAMP) browser-deps lint
	$(BIN)/python -m pytest -q
