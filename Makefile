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

.PHONY: install run test
install: $(BIN)/hamixer

run: install
	$(BIN)/hamixer compare --dataset digits

test: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q
