# cvcourse: `make lab` opens the course, `make test` runs every test. Both set up what is missing first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cvcourse-installed

.PHONY: lab test setup sandbox bench generate grade clean-venv

setup: $(STAMP) sandbox
	@$(PY) -m cvcourse.grading install-kernel --sys-prefix

# A local virtualenv with the course and its test tools; redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "cvcourse needs Python 3.10 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

# bubblewrap isolates student code during autograding (see README, "Instructors").
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "Installing bubblewrap (grading sandbox)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; }

lab: setup
	$(VENV)/bin/jupyter lab lectures

# One pytest worker per core, one thread per worker: torch's own threads on top of the workers
# oversubscribe the cores and make torch code many times slower.
test: setup
	CVCOURSE_FAST=$${CVCOURSE_FAST:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} \
	  $(PY) -m pytest -n auto --dist loadfile --nbval-lax

bench: setup
	$(PY) benchmarks/ops.py

# Instructors: regenerate release/ and solutions/ from source/, and grade a folder of submissions.
generate: setup
	$(PY) -m cvcourse.grading generate

grade: setup
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade ASSIGNMENT=iou_nms SUBMISSIONS=path/to/submitted"; exit 2; }
	$(PY) -m cvcourse.grading grade $(ASSIGNMENT) $(SUBMISSIONS) --csv grades-$(ASSIGNMENT).csv

clean-venv:
	rm -rf $(VENV)
