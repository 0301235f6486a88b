# Quick start:  make train  (set up, train CartPole-v1 REINFORCE on 16 seeds)
#               make test   (set up, run the test suite)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/cartpole-reinforce
EXTRAS := cli,test,checkpoint,tensorboard,craftax,brax,playground,jumanji,navix,xminigrid,pgx

.PHONY: train test lint format bench clean

$(STAMP): Makefile pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Python writes each module's bytecode on first import, also where
# PYTHONDONTWRITEBYTECODE is set: without it every process compiles JAX's
# sources again (`import jaxpg` 4.3 s instead of 1.8 s).
PY_ENV := PYTHONDONTWRITEBYTECODE=

train: $(STAMP)
	$(PY_ENV) $(BIN)/jaxpg train --env CartPole-v1 --algo reinforce --seeds 16 --out $(RUN) --overwrite

test: $(STAMP)
	$(PY_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests

lint: $(STAMP)
	$(BIN)/ruff format --check jaxpg tests benchmarks
	$(BIN)/ruff check jaxpg tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format jaxpg tests benchmarks
	$(BIN)/ruff check --fix jaxpg tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
