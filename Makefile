# Two commands do all the set-up on a fresh machine (Python >= 3.10 with venv):
#   make run    -> creates .venv, installs hamixer, runs the main job on the built-in dataset
#   make test   -> creates .venv, installs hamixer with its test extras, runs lint and tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/hamixer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

.PHONY: install run test test-fast lint
install: $(BIN)/hamixer

# one thread per run (side by side, as many as the cores allow): the README's numbers on any
# machine, since the float sums of a run depend on its thread count
run: install
	$(BIN)/hamixer compare --dataset digits --threads 1

# the packages that are type-checked
TYPED := src/hamixer/ham src/hamixer/models src/hamixer/measures src/hamixer/train

# lint: style, the layering contracts, and the types of the HAM library, the models, the
# measures and the trainer
lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy --follow-imports=silent $(TYPED)

# test: everything; test-fast: without the tests marked slow (224 px models, torchrun,
# killed processes, worker pools, torch.compile)
test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"
