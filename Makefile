# Two commands matter: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATADIR ?= ./data
RUN_ARGS ?=

.PHONY: install run test lint bench clean wheel wheel-smoke test-services
.PHONY: systemd-install systemd-smoke

VENDOR := web/vendor/hls.min.js
# The browser tests drive Debian's Chromium through Playwright; no browser is downloaded.
CHROMIUM := /usr/bin/chromium
# System packages are installed with apt-get when missing (as root), or named and make
# stops: .ci/apt-need WHAT CHECK PACKAGE...
APT_NEED := .ci/apt-need

install: $(STAMP) $(VENDOR)

$(CHROMIUM):
	$(APT_NEED) "the browser tests" "test -x $(CHROMIUM)" chromium

# Front-end libraries come from the npm registry at install time, never from a CDN.
$(VENDOR): package.json package-lock.json
	$(APT_NEED) "hls.js from the npm registry (npm ci)" "command -v node && command -v npm" \
		nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p web/vendor
	cp node_modules/hls.js/dist/hls.min.js web/vendor/hls.min.js
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css web/vendor/

# editable_mode=compat puts the checkout itself on sys.path, so twistd finds
# twisted/plugins/owncast_plugin.py and code edits need no reinstall.
$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(BIN)/python || $(APT_NEED) "the virtualenv in $(VENV)" \
		"$(PYTHON) -c 'import ensurepip, venv'" python3-venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	touch $(STAMP)

run: install
	$(BIN)/twistd --nodaemon --pidfile= owncast --datadir $(DATADIR) $(RUN_ARGS)

# What the tests talk to besides the checkout: a Redis (.ci/test-redis) and, for the
# unit file's checks, systemd-analyze (Debian's systemd package; no running systemd needed).
# tests/test_health.py, test_store_redis.py and test_e2e_redis.py also run redis-servers of
# their own (stopped and restarted: a Redis outage); test_diskfull_e2e.py uses unshare.
test-services:
	.ci/test-redis $(PYTHON)
	$(APT_NEED) "tests/test_health.py" "command -v redis-server" redis-server
	$(APT_NEED) "checking systemd/owncast.service" "command -v systemd-analyze" systemd

test: install $(CHROMIUM) test-services
	$(BIN)/ruff check owncast tests twisted bench
	$(BIN)/ruff format --check owncast tests twisted bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/trial --jobs=2 tests
	$(MAKE) --no-print-directory compat
	$(MAKE) --no-print-directory wheel-smoke
	$(MAKE) --no-print-directory systemd-smoke

# The wheel (web/ and its vendored libraries inside), built from an empty build/ so that no
# module left there by an earlier layout slips in.
wheel: install
	rm -rf build dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

# The wheel installed into a fresh virtualenv outside the checkout must start and serve.
wheel-smoke: wheel
	$(PYTHON) tests/wheel_smoke.py dist/*.whl

# The daemon as a systemd service (as root): see systemd/owncast.service and the README.
PREFIX ?= /opt/owncast
SYSTEM_PYTHON ?= /usr/bin/python3
systemd-install: wheel
	PREFIX=$(PREFIX) SYSTEM_PYTHON=$(SYSTEM_PYTHON) systemd/install.sh dist/*.whl

# systemd-install staged in a temporary folder; the daemon started from there as systemd
# would (NOTIFY_SOCKET, WATCHDOG_USEC) must report ready, ping and serve its probes.
systemd-smoke: wheel
	$(APT_NEED) "the systemd smoke test" "$(SYSTEM_PYTHON) -c 'import ensurepip, venv'" \
		python3-venv
	$(PYTHON) systemd/smoke.py --python $(SYSTEM_PYTHON) dist/*.whl

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
