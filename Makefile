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

.PHONY: lab test test-fast outputs exercises release grade bench lint clean

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
	rm -rf $(VENV) grading-out
