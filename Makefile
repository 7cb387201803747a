# rksim: `make run` starts the dashboard, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.installed-base
STAMP_DEV := $(VENV)/.installed-dev
PORT ?= 8501

.PHONY: run test lint format bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $@ $(STAMP_BASE)

run: $(STAMP_BASE)
	$(BIN)/streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(PORT)

test: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy simulator models benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

notebooks: $(STAMP_DEV)
	$(BIN)/jupyter lab --ip 127.0.0.1 notebooks/

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info test-artifacts
