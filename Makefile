# make demo  - build the demo dataset (and later run the notebooks) on the built-in assets
# make test  - lint, unit tests, notebook pairing and nbval smoke runs
# Both create .venv from the requirements when it is missing or older than them.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= demo
OUT ?= runs/$(PROFILE)

.PHONY: demo test lint nbtest sync clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r requirements.txt -r requirements-dev.txt -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fgbg_utils make-dataset --profile $(PROFILE) --out $(OUT)/data
	$(BIN)/python -m fgbg_utils verify $(OUT)/data
	$(BIN)/python -m fgbg_utils report $(OUT)/data

lint: $(STAMP)
	$(BIN)/ruff check .

# One pytest run: the unit tests, and every notebook executed in the smoke profile with its
# NBVAL_CHECK_OUTPUT cells compared against the outputs stored from a demo run.
test: lint $(STAMP)
	FGBG_PROFILE=smoke $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env tests notebooks

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs .pytest_cache
