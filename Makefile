# Two entry points (see README): `make demo` and `make test`.
# Both create the virtualenv and install the project on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= build/demo

export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: demo test bench clean chromium bubblewrap

$(BIN)/challenge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/challenge
	$(BIN)/challenge demo $(DEMO)

# The tests run on TEST_WORKERS pytest-xdist workers, one module at a time each (most tests wait on servers
# and subprocesses, so a few more workers than cores); TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= 4

test: $(BIN)/challenge chromium bubblewrap
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Teams' algorithms run in a bubblewrap sandbox (Debian's package; prlimit and setpriv come with util-linux).
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "installing Debian's bubblewrap for the algorithm sandbox"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap util-linux >/dev/null; }

# The leaderboard page is checked in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the leaderboard page test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Growth curves (gate, publish, scoring at 100k/1M/10M rows; images at 10k/100k) into build/bench/,
# then the flow, interval and Dask benchmarks and the CLI's fixed cost (first command on a new Prefect
# home, the next one, --no-server); each prints its ratios against a baseline of the same run.
bench: $(BIN)/challenge
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/curves.py
	$(BIN)/python bench/images.py --images 10000 --backend s3
	$(BIN)/python bench/flow_scoring.py
	$(BIN)/python bench/intervals.py
	$(BIN)/python bench/dask_runner.py
	$(BIN)/python bench/cli_fixed_cost.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) build .pytest_cache
