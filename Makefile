# The course's commands. Each target creates .venv and installs everything if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A CPU build of PyTorch, installed before the package so its torch range is already met.
TORCH_SPEC ?= torch==2.13.0
JOBS ?= 2
export OMP_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout=600
# A student release has no solutions/: its tests are the lessons, the exercises and the answer-free units.
SOLUTIONS := $(wildcard solutions)
RELEASE ?= release

.PHONY: lab test test-fast test-browser site outputs exercises release grade bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)" \
		|| echo "note: $(TORCH_SPEC) is not available here; pip will choose a torch build"
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

# JupyterLab refuses to start as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)  ## open JupyterLab on the course
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=. $(ROOT_FLAG) $(LAB_ARGS) notebooks/01_mle_coin_flips.ipynb

test: $(STAMP)  ## the whole suite: unit tests, grader, notebooks (strict), exercises (run only), lint
	$(BIN)/python -m pytest -n $(JOBS) --dist=loadfile $(NBVAL) tests notebooks $(SOLUTIONS) exercises

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest -n $(JOBS) tests

# The browser test drives Debian's chromium (installed by the script where it is missing and it runs as root)
# through the playwright package, installed here: its own browser download is never used.
PLAYWRIGHT_SPEC ?= playwright>=1.40
test-browser: $(STAMP)  ## every lesson in JupyterLab in headless Chromium (Run All, explorers moved), screenshots in test-artifacts/: make test-browser LESSONS="01 04"
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install -q "$(PLAYWRIGHT_SPEC)" \
		|| { echo "test-browser: missing: the Python package playwright (pip could not install $(PLAYWRIGHT_SPEC))"; exit 2; }
	$(BIN)/python tools/browser_test.py --setup
	$(BIN)/python -m pytest -q tests/test_browser.py
	$(BIN)/python tools/browser_test.py --jobs $(JOBS) $(LESSONS)

site: $(STAMP)  ## the lessons with their stored outputs as a static site in site/ (open site/index.html)
	$(BIN)/python tools/build_site.py --out site

outputs: $(STAMP)  ## re-execute lessons and solutions and store their outputs
	$(BIN)/python -m course_utils.assessment.authoring outputs notebooks/*.ipynb $(wildcard solutions/*.ipynb)

exercises: $(STAMP)  ## regenerate exercises/ from solutions/
	$(BIN)/python -m course_utils.assessment.authoring exercises

release: $(STAMP)  ## write the student course (no solutions, no instructor key) into $(RELEASE)/: make release RELEASE=dir
	$(BIN)/python -m course_utils.assessment.release $(RELEASE)

GRADE_DIR ?= grading-out
grade: $(STAMP)  ## grade submissions into grading-out/A (one folder per assignment): make grade A=01 S=path/to/submissions
	$(BIN)/course-grade $(A) $(S) --out $(GRADE_DIR)/$(A)

bench: $(STAMP)  ## benchmarks, each printing JSON
	@for b in benchmarks/*.py; do echo "== $$b"; OMP_NUM_THREADS= $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) grading-out site test-artifacts
