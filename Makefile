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

.PHONY: demo test bench clean

$(BIN)/challenge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/challenge
	rm -rf $(DEMO)
	$(BIN)/challenge init $(DEMO) --with-examples
	$(BIN)/challenge --config $(DEMO)/challenge.yaml collect
	$(BIN)/challenge --config $(DEMO)/challenge.yaml publish --release demo-1

test: $(BIN)/challenge
	$(BIN)/pytest -q

bench: $(BIN)/challenge
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache
