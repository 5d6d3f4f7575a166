# Two commands matter: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATADIR ?= ./data
RUN_ARGS ?=

.PHONY: install run test lint bench clean

VENDOR := web/vendor/hls.min.js

install: $(STAMP) $(VENDOR)

# Front-end libraries come from the npm registry at install time, never from a CDN.
$(VENDOR): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p web/vendor
	cp node_modules/hls.js/dist/hls.min.js web/vendor/hls.min.js

# editable_mode=compat puts the checkout itself on sys.path, so twistd finds
# twisted/plugins/owncast_plugin.py and code edits need no reinstall.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

run: install
	$(BIN)/twistd --nodaemon --pidfile= owncast --datadir $(DATADIR) $(RUN_ARGS)

test: install
	$(BIN)/ruff check owncast tests twisted bench
	$(BIN)/trial --jobs=2 tests

lint: install
	$(BIN)/ruff check owncast tests twisted bench
	$(BIN)/ruff format --check owncast tests twisted bench || true

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) _trial_temp* twisted/plugins/dropin.cache node_modules web/vendor
