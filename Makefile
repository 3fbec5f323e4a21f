# One way to install, the same on a CPU box and a GPU box:
#   torch first and pinned (TORCH_SPEC), then the package, which accepts any torch >= 2.2.
# On a GPU machine set TORCH_SPEC to the CUDA build you want, or install torch yourself first
# and run `pip install -e ".[dev]"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test test-fast demo clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/mrtrans demo --out demo --overwrite

clean:
	rm -rf $(VENV) demo .pytest_cache
