# Two entry points a new user needs: `make serve` and `make test`.
# Each creates the virtual environment on first use (python3 -m venv), installs
# the project into it and the few Debian libraries it needs; later runs reuse it.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: setup serve test lint system-deps browser-deps
setup: $(STAMP) system-deps

# skia-python (the avatar renderer) links against libEGL and libGL.
system-deps:
	@ldconfig -p | grep -q 'libEGL.so.1 ' && ldconfig -p | grep -q 'libGL.so.1 ' || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && $(APT_INSTALL) libegl1 libgl1 >/dev/null; \
	  else echo "the avatar renderer needs libEGL and libGL: sudo apt-get install libegl1 libgl1"; exit 1; fi; }

serve: setup
	$(BIN)/marionette serve

# Debian's Chromium drives the browser tests; installed once, as root.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && $(APT_INSTALL) chromium chromium-driver >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver"; exit 1; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy realtime streaming bench kernels clients tests

test: setup browser-deps lint
	$(BIN)/python -m pytest -q
