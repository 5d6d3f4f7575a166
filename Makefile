# Two commands matter: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATADIR ?= ./data
RUN_ARGS ?=

.PHONY: install run test lint bench clean wheel wheel-smoke

VENDOR := web/vendor/hls.min.js
# The browser tests drive Debian's Chromium through Playwright; no browser is downloaded.
CHROMIUM := /usr/bin/chromium
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
APT_INSTALL := $(APT_GET) install -y --no-install-recommends

install: $(STAMP) $(VENDOR)

# Only when it is missing (we are root in CI); `apt-get update` first if the lists are stale.
$(CHROMIUM):
	$(APT_INSTALL) chromium || ($(APT_GET) update && $(APT_INSTALL) chromium)

# Front-end libraries come from the npm registry at install time, never from a CDN.
$(VENDOR): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p web/vendor
	cp node_modules/hls.js/dist/hls.min.js web/vendor/hls.min.js

# editable_mode=compat puts the checkout itself on sys.path, so twistd finds
# twisted/plugins/owncast_plugin.py and code edits need no reinstall.
$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	touch $(STAMP)

run: install
	$(BIN)/twistd --nodaemon --pidfile= owncast --datadir $(DATADIR) $(RUN_ARGS)

test: install $(CHROMIUM)
	$(BIN)/ruff check owncast tests twisted bench
	$(BIN)/ruff format --check owncast tests twisted bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/trial --jobs=2 tests
	$(MAKE) --no-print-directory compat
	$(MAKE) --no-print-directory wheel-smoke

# The wheel (web/ and its vendored libraries inside), built from an empty build/ so that no
# module left there by an earlier layout slips in.
wheel: install
	rm -rf build dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

# The wheel installed into a fresh virtualenv outside the checkout must start and serve.
wheel-smoke: wheel
	$(PYTHON) tests/wheel_smoke.py dist/*.whl

.PHONY: compat
# The tests that touch Twisted and Autobahn internals, against the oldest and the newest
# versions setup.cfg allows, each in a throwaway virtualenv (about a minute).
compat: install
	$(BIN)/python .ci/compat-matrix

lint: install
	$(BIN)/ruff check owncast tests twisted bench
	$(BIN)/ruff format --check owncast tests twisted bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) _trial_temp* twisted/plugins/dropin.cache node_modules web/vendor build dist
