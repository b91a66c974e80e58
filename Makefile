# cvcourse: `make lab` opens the course, `make test` runs every test. Both set up what is missing first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cvcourse-installed

.PHONY: lab test setup sandbox chromium site site-deps bench generate grade instructor-ui student-ui clean-venv

# The grading kernel goes into a private folder of the venv (share/cvcourse/kernels) that only nbgrader's
# configuration looks in, so students' JupyterLab never lists it; older set-ups put it where Jupyter lists it.
setup: $(STAMP) sandbox chromium $(VENV)/.cvcourse-ui
	@rm -rf $(VENV)/share/jupyter/kernels/cvcourse-sandbox
	@echo "Grading sandbox kernel (for nbgrader only, hidden from JupyterLab): $$($(PY) -m cvcourse.grading install-kernel --sys-prefix)"

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

# Chromium for the browser test (tests/test_browser.py drives it with Playwright; no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Chromium (browser test)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# Students do not need nbgrader's authoring and grading UI ("Create Assignment", Formgrader, Courses): off by
# default, once per venv. Instructors: `make instructor-ui` (and `make student-ui` to hide it again).
NBGRADER_LAB := @jupyter/nbgrader:create-assignment @jupyter/nbgrader:formgrader @jupyter/nbgrader:course-list
NBGRADER_SERVER := nbgrader.server_extensions.formgrader nbgrader.server_extensions.course_list
$(VENV)/.cvcourse-ui: $(STAMP)
	@$(MAKE) --no-print-directory student-ui

student-ui: $(STAMP)
	@$(VENV)/bin/jupyter labextension disable --level=sys_prefix $(NBGRADER_LAB) >/dev/null 2>&1
	@$(VENV)/bin/jupyter server extension disable --sys-prefix $(NBGRADER_SERVER) >/dev/null 2>&1
	@touch $(VENV)/.cvcourse-ui
	@echo "nbgrader's instructor UI is off (students' default); 'make instructor-ui' turns it on"

instructor-ui: $(STAMP)
	@$(VENV)/bin/jupyter labextension enable --level=sys_prefix $(NBGRADER_LAB) >/dev/null 2>&1
	@$(VENV)/bin/jupyter server extension enable --sys-prefix $(NBGRADER_SERVER) >/dev/null 2>&1
	@touch $(VENV)/.cvcourse-ui
	@echo "nbgrader's instructor UI is on (Create Assignment, Formgrader, Courses); restart JupyterLab"

# Prints the URL and the mode (fast without a GPU, full with one, unless CVCOURSE_FAST says otherwise).
lab: setup
	@$(PY) -m cvcourse.lab .

# One pytest worker per core, one thread per worker: torch's own threads on top of the workers
# oversubscribe the cores and make torch code many times slower.
test: setup site-deps
	CVCOURSE_FAST=$${CVCOURSE_FAST:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} \
	  $(PY) -m pytest -n auto --dist loadfile --nbval-lax

# The course site (README, "Course site"): Jupyter Book 2 (jupyter-book, dev extra) runs on Node.js, and the
# pages use KaTeX's stylesheet and fonts: Debian's nodejs and libjs-katex, installed when missing.
site: setup site-deps
	$(PY) site/build.py

site-deps:
	@command -v node >/dev/null 2>&1 && test -f /usr/share/javascript/katex/katex.min.css || { \
	  echo "Installing Node.js and KaTeX (course site)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs libjs-katex; }

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
