# Báo Nhúng — two commands matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY    := .venv/bin/python
PIP   := .venv/bin/pip
HOST  ?= 127.0.0.1
PORT  ?= 8000
export BAONHUNG_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test test-slow lock audit bench-load deps deps-system deps-python deps-node bench-recognition bench-rating bench-bundle bench-viewer bench-analytics bench-premium bench-scale opencv-js clean

.venv/bin/python:
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip

# Python packages (the project and its test extras) at the versions requirements.lock pins, stamped so a second run
# is instant.
.venv/.deps-stamp: pyproject.toml requirements.lock | .venv/bin/python
	$(PIP) install -q -c requirements.lock -e '.[test]'
	touch $@

# requirements.lock again from pyproject.toml: a fresh venv resolves it, pip freeze pins the result.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock && .venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q -e '.[test]'
	{ sed -n '1,3p' requirements.lock; .venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

# Known vulnerabilities (pip-audit, npm audit); says so plainly where their advisory services cannot be reached.
audit: deps
	$(PIP) install -q pip-audit
	scripts/audit.sh

node_modules/.deps-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps-python: .venv/.deps-stamp
deps-node: node_modules/.deps-stamp

# Debian packages the product and its tests need (browser, ffmpeg, poppler, nginx for tests/web/test_nginx.py and
# make bench-scale); installed only when missing.
deps-system:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ffmpeg   >/dev/null || missing="$$missing ffmpeg"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

deps: deps-system deps-python deps-node

run: deps
	$(PY) -m builder.cli db upgrade
	$(PY) -m builder.cli demo
	$(PY) -m builder.cli serve --host $(HOST) --port $(PORT)

# Every test that touches the database runs twice: on SQLite (the first run, with all the others) and on PostgreSQL
# (the second run, `--db postgresql`: tests/conftest.py keeps only those tests). Each run migrates a template database
# once and copies it per test. scripts/test-postgres.sh installs/starts a local server (loopback).
# The S3 asset-store tests run against OpenStack Swift's S3 API: scripts/test-swift.sh installs/starts one (loopback).
# The publish queue on Redis (huey) is tested against Debian's redis-server: scripts/test-redis.sh installs/starts one (loopback).
# The phone viewer's real-time tests (marker realtime: a camera clip plays at its own pace while the viewer tracks it)
# run afterwards on their own: beside a second pytest worker on a slowed 2-core machine they fell below their bars.
# Ends with each run's count and the total, and stops the PostgreSQL server if it started it, Swift and Redis.
test: deps
	@mkdir -p test-artifacts; rc=0; pg_url=$$(scripts/test-postgres.sh); s3_url=$$(scripts/test-swift.sh) || exit 1; \
	redis_url=$$(scripts/test-redis.sh) || exit 1; \
	export BAONHUNG_TEST_POSTGRES_URL=$$pg_url BAONHUNG_TEST_S3_URL=$$s3_url BAONHUNG_TEST_REDIS_URL=$$redis_url; \
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow and not realtime" \
	  --junitxml=test-artifacts/junit-main.xml $(PYTEST_ARGS) || rc=$$?; \
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow and not realtime" --db postgresql \
	  --junitxml=test-artifacts/junit-postgresql.xml $(PYTEST_ARGS) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	$(PY) -m pytest -q -n 0 -m "realtime and not slow" --junitxml=test-artifacts/junit-realtime.xml $(PYTEST_ARGS) \
	  || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	scripts/test-postgres.sh stop; scripts/test-swift.sh stop; scripts/test-redis.sh stop; \
	$(PY) scripts/test_total.py test-artifacts/junit-main.xml test-artifacts/junit-postgresql.xml \
	  test-artifacts/junit-realtime.xml; \
	exit $$rc

test-slow: deps
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench-recognition: deps
	$(PY) bench/bench_recognition.py $(BENCH_ARGS)

bench-rating: deps
	$(PY) bench/bench_rating.py $(BENCH_ARGS)

bench-bundle: deps
	$(PY) bench/bench_bundle.py $(BENCH_ARGS)

bench-viewer: deps
	$(PY) bench/bench_viewer.py $(BENCH_ARGS)

bench-load: deps
	$(PY) bench/bench_load.py $(BENCH_ARGS)

# Readership analytics (issue 26): ingestion beside recognize traffic, bytes per event, dashboard at 10 M events
# (BENCH_ARGS="--events 1000000" for a quick run).
bench-analytics: deps
	$(PY) bench/bench_analytics.py $(BENCH_ARGS)

# Premium overlays (issue 27): the signed-URL check in µs (pure and through the app) and the publish time with and
# without premium overlays (BENCH_ARGS="--requests 200 --repeat 1" for a quick run).
bench-premium: deps
	$(PY) bench/bench_premium.py $(BENCH_ARGS)

# Scale-out (issue 28): Debian's nginx (deps-system installs it when missing) in front of 1 then 2 serve-public
# processes on loopback, recognize + artifact load, memory per process, a publish through the worker and each
# replica's pickup (BENCH_ARGS="--seconds 10 --pages 6" for a quick run).
bench-scale: deps
	$(PY) bench/bench_scale.py $(BENCH_ARGS)

# The viewer's opencv.js (only the tracker's functions, separate .wasm), rebuilt from source into viewer_api/vendor/opencv
# (committed; ~15 min on 2 cores). Inputs and output hashes: viewer_api/vendor/opencv/BUILD-INFO.json.
opencv-js:
	scripts/build-opencv-js.sh

clean:
	rm -rf var .pytest_cache test-artifacts
