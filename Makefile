# Two commands do everything on a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup corpus book test lint student clean

# The environment: a venv with torch first (a CPU build here; Colab brings its own),
# then the package with its test and book tools. (Byte-compiling up front is kept: measured,
# --no-compile saved a minute of install but cost three in the tests' many fresh kernels.)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3"
	touch $(STAMP)

setup: $(STAMP)

# Real text for the offline model, cached outside the repository; a second run is instant.
corpus: setup
	$(BIN)/python -m tutorial_sae.build.corpus build
	-$(BIN)/python -m tutorial_sae.plots.fonts fetch

book: corpus
	-$(BIN)/python scripts/vendor_mathjax.py
	$(BIN)/jupyter-book build . -W --keep-going

test: corpus
	bash scripts/install_chromium.sh
	-$(BIN)/python scripts/vendor_mathjax.py
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

student: setup
	$(BIN)/python scripts/make_student_notebooks.py

clean:
	rm -rf _build
