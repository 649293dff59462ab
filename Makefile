# One-command entry points (see README). Everything installs into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[all]"
	touch $@

demo: $(BIN)/.installed  ## set up, then run the whole pipeline on built-in demo data
	$(BIN)/drgsim demo -o demo_out

test: $(BIN)/.installed  ## set up, then lint and run the test suite
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q --nbmake tests notebooks

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks

bench: $(BIN)/.installed  ## performance figures for this machine (not part of the tests)
	$(BIN)/python benchmarks/bench_grouper.py
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_payment.py
	$(BIN)/python benchmarks/bench_batch.py
	$(BIN)/python benchmarks/bench_inputs.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_distributed.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
