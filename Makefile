# One way to install, the same on a CPU box and a GPU box:
#   torch first and pinned (TORCH_SPEC), then the package, which accepts any torch >= 2.2.
# On a GPU machine set TORCH_SPEC to the CUDA build you want, or install torch yourself first
# and run `pip install -e ".[dev]"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test test-fast test-experiments demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(STAMP)

# The formatter and linter CI runs (ruff, pinned in the dev extra); `ruff format .` fixes the first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The full suite (README, CI): every test but the `experiment` presets, on all cores (pytest-xdist; a module's
# tests stay on one worker, so its fixtures are built once). About 7 minutes on 2 cores in a clean clone, 9-10 with
# the real sample present (docs/benchmarks.md).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadscope

# For development: no training (tests/conftest.py fails an unmarked test that trains), no subprocesses, no real
# sample (213 tests, about 20 s on 2 cores).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadscope -m "not slow and not experiment"

# The shipped presets end to end, as a user runs them (reproduce-table1 --scale cpu: minutes).
test-experiments: $(STAMP)
	$(BIN)/python -m pytest -q -m experiment

# Resumable: interrupted, `make demo` again continues where it stopped (mrtrans demo --overwrite starts afresh).
demo: $(STAMP)
	$(BIN)/mrtrans demo --out demo

clean:
	rm -rf $(VENV) demo .pytest_cache
