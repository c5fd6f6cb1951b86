# The two commands of the README:
#   make book   build the book with default parameters -> book/_build/html/index.html
#   make test   run the tests
# Both create the Python environment (.venv) and get the default data when they are absent,
# so they work on a fresh Debian machine with Python 3.11 (CI: .ci/run calls `make test`).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
# torch first: a matching pair that installs from a local wheel cache in a minute (see ENVIRONMENT.md)
TORCH   := torch==2.14.1 torchvision==0.29.1
EXTRAS  := book,test,faiss
# re-created when pyproject.toml or this file changes; `make env` is a no-op otherwise
STAMP   := $(VENV)/.ddlib-env
PYTEST_ARGS ?=
# the book's scale: empty = the chapters' defaults ("cpu"); test|cpu|gpu|workshop = every chapter run with
# scale=SCALE. Either way papermill executes the chapters (JOBS at a time), then Jupyter Book builds them as executed
SCALE   ?=
# chapters executed at once by `make book` (ddlib.bookbuild: they share the threads and one artifact cache)
JOBS    ?= 2

MATHJAX_VERSION   := 3.2.2
MATHJAX_INTEGRITY := sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==
MATHJAX := book/_vendor/mathjax/tex-chtml.js

# the book's renderer as the builds use it (ddlib.plots.style): each figure's html without plotly.js, which
# the site serves once (book/_ext/plotly_static.py), so the figures draw offline
export PLOTLY_RENDERER := notebook
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# $(call apt_install,PKGS): apt-get install as root or with password-less sudo; status 1 where impossible
define apt_install
{ command -v apt-get >/dev/null 2>&1 && \
  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else false; fi && \
  { $$SUDO apt-get install -y -q --no-install-recommends $(1) || \
    { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends $(1); }; }; }
endef

.PHONY: help book test env data browser mathjax clean

help:
	@echo "make book    build the book (creates $(VENV) and gets Fashion-MNIST if absent) -> book/_build/html"
	@echo "             make book SCALE=test|cpu|gpu|workshop runs every chapter at that scale; JOBS=2 chapters at once"
	@echo "make test    run the tests (creates $(VENV) if absent); PYTEST_ARGS='-k data' to select"
	@echo "make env     only create the environment; make clean removes builds (not $(VENV))"

env: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "== $(PYTHON) has no venv support: installing python3-venv"; $(call apt_install,python3-venv); fi
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(PY) -c 'import ddlib, torch, torchvision; print("environment ready:", ddlib.__version__, torch.__version__)'
	@touch $@

# Fashion-MNIST, the book's default data: the Debian package where apt is available, else torchvision
data: env
	@if $(PY) -c 'from ddlib import data; data.load("fashion-mnist", per_class=1, download=False)' 2>/dev/null; then \
	  echo "Fashion-MNIST: found"; \
	elif $(call apt_install,dataset-fashion-mnist); then echo "Fashion-MNIST: installed dataset-fashion-mnist"; \
	else echo "Fashion-MNIST: no apt-get as root; downloading with torchvision"; \
	  $(PY) -c 'from ddlib import data; data.load("fashion-mnist", per_class=1, download=True)'; fi

# Debian's chromium + chromedriver, for the rendered-book test (skipped without them, except in CI)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif $(call apt_install,chromium chromium-driver); then echo "chromium: installed"; \
	elif [ "$${CI:-}" = true ]; then echo "error: CI needs chromium and chromium-driver" >&2; exit 1; \
	else echo "note: no chromium here; tests/test_rendered_book.py will be skipped"; fi

# MathJax served with the book, so maths renders for an offline reader (npm's mathjax package)
mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf book/_vendor/mathjax.tmp && mkdir -p book/_vendor/mathjax.tmp
	if command -v npm >/dev/null; then \
	  (cd book/_vendor/mathjax.tmp && npm pack -q --silent mathjax@$(MATHJAX_VERSION) >/dev/null); \
	else $(PY) .ci/fetch_npm.py mathjax $(MATHJAX_VERSION) '$(MATHJAX_INTEGRITY)' book/_vendor/mathjax.tmp; fi
	cd book/_vendor/mathjax.tmp && tar -xzf mathjax-$(MATHJAX_VERSION).tgz \
	  package/LICENSE package/es5/tex-chtml.js package/es5/output/chtml package/es5/input/tex/extensions \
	  package/es5/a11y package/es5/ui package/es5/adaptors
	mv book/_vendor/mathjax.tmp/package/LICENSE book/_vendor/mathjax.tmp/package/es5/
	rm -rf book/_vendor/mathjax && mv book/_vendor/mathjax.tmp/package/es5 book/_vendor/mathjax
	rm -rf book/_vendor/mathjax.tmp

# DDLIB_PROGRESS=0: no progress bars in the pages (ddlib.utils.progress_shown; `python -m ddlib book` sets it too)
book: env data mathjax
	$(PY) -m ddlib book --jobs $(JOBS) $(if $(SCALE),--scale $(SCALE))
	@test -f book/_build/html/index.html && echo "book: book/_build/html/index.html"

test: env data browser mathjax
	@$(PY) -m pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc = 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$rc; }

clean:
	rm -rf book/_build book/_vendor/mathjax
