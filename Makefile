# The course's entry points. `make book` and `make test` are the two commands of README; both install what they
# need into .venv first (from requirements.txt and pyproject.toml), so a fresh clone needs only Python 3.11.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv sandbox browser postgres book linkcheck public-mirror release test lint pytest clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnnbook)" >/dev/null
	touch $(STAMP)

## Build the site into _build/html, executing every lecture notebook (profile from CNNBOOK_PROFILE, default auto).
book: $(STAMP)
	$(PY) -m tools.book build

## Check every external link of the book with Sphinx's linkcheck, executing no notebook; fails on a broken one.
## The weekly workflow .github/workflows/linkcheck.yml runs it. Report: _build/linkcheck/_build/html/output.txt.
linkcheck: $(STAMP)
	$(PY) -m tools.book linkcheck

## The public mirror of a graded course: what students need (lectures, book pages, release/, cnnbook, the build
## and its workflows), none of source/, autograder/, tests/ or the instructors' pages, pointed at URL:
##   make public-mirror DIR=../cnn-course-public URL=https://github.com/OWNER/cnn-course-public
## URL may be left out when DIR already holds a mirror. README: "A public mirror for a graded course".
public-mirror: $(STAMP)
	@test -n "$(DIR)" || { echo "usage: make public-mirror DIR=path/to/mirror [URL=https://github.com/OWNER/REPO]" >&2; exit 2; }
	$(PY) -m tools.mirror "$(DIR)" $(if $(URL),--repository "$(URL)")

## Generate the student versions release/<a>/<a>.ipynb from source/ with nbgrader (no gradebook is written).
## Commit the result: Colab opens release/, and a test fails when it differs from what this target makes.
ASSIGNMENTS := $(patsubst source/%/,%,$(wildcard source/a[0-9]_*/))
release: $(STAMP)
	@for a in $(ASSIGNMENTS); do \
	  PATH="$(abspath $(VENV))/bin:$$PATH" nbgrader generate_assignment $$a --force --no-db --log-level=WARN \
	    || exit 1; \
	  echo "release/$$a/$$a.ipynb"; \
	done

## The grading sandbox: bubblewrap, from Debian's packages (as root, or through sudo). Without it `autograder grade`
## refuses to run student code unless told the submissions are trusted (autograder/SANDBOX.md).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q bubblewrap >/dev/null; }; }
	@bwrap --version

## Headless Chromium, from Debian's packages (as root, or through sudo): tests/test_site.py opens the built site
## in it through Playwright (which downloads no browser of its own).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -q >/dev/null \
	         && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }
	@/usr/bin/chromium --version 2>/dev/null

## PostgreSQL, from Debian's packages (as root, or through sudo): tests/test_cluster.py starts a private server
## on loopback from it (a course gradebook can live on such a server: `autograder --db postgresql://...`).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -q >/dev/null \
	         && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }; }
	@ls /usr/lib/postgresql/*/bin/postgres

## Lint, then the whole test suite (builds the book under the smoke profile once and checks it).
test: sandbox browser postgres lint pytest

lint: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" pre-commit run --all-files

pytest: $(STAMP)
	@start=$$(date +%s); CNNBOOK_PROFILE=smoke $(VENV)/bin/pytest; status=$$?; \
	  echo "pytest wall time: $$(( $$(date +%s) - start )) s"; exit $$status

clean:
	rm -rf _build
