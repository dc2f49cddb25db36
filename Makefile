# make demo  - run every notebooks/NN_*.ipynb headless in order in the demo profile (they build, verify and
#              report the dataset, train and evaluate), writing the executed notebooks, their figures and
#              timings to runs/demo/, then print a summary (runs/demo/summary.md). PROFILE=smoke for a quick
#              check; DEMO_FLAGS=--update-notebooks also stores the executed notebooks back in notebooks/.
# make test  - lint, unit tests, notebook pairing, nbval smoke runs and notebook 07 in headless Chromium
# Both create .venv from the requirements when it is missing or older than them.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Chromium for tests/test_browser.py; FGBG_SKIP_BROWSER=1 skips that test and this install.
CHROMIUM := $(if $(filter 1,$(FGBG_SKIP_BROWSER)),,/usr/bin/chromium)
PROFILE ?= demo
OUT ?= runs/$(PROFILE)

.PHONY: demo test lint nbtest sync clean real-photos

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r requirements.txt -r requirements-dev.txt -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fgbg_utils run-notebooks --profile $(PROFILE) --out $(OUT) $(DEMO_FLAGS)
	$(BIN)/python -m fgbg_utils verify $(OUT)/data

lint: $(STAMP)
	$(BIN)/ruff check .

# One pytest run: the unit tests, and every notebook executed in the smoke profile with its
# NBVAL_CHECK_OUTPUT cells compared against the outputs stored from a demo run.
test: lint $(STAMP) $(CHROMIUM)
	FGBG_PROFILE=smoke $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env -n auto --dist loadfile tests notebooks

# Installed only when missing (apt needs root, as on CI's fresh machines).
/usr/bin/chromium:
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null

# The real-photo benchmark (benchmarks/real_photos.py): installs its Debian asset packages (root), builds,
# trains 10 minutes, scores unseen_test and writes docs/real_photos/grid.png. PHOTOS_FLAGS=--minutes 1 checks it.
real-photos: $(STAMP)
	$(BIN)/python benchmarks/real_photos.py $(PHOTOS_FLAGS)

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs .pytest_cache
