# The two commands the README promises: `make demo` and `make test`.
# Each creates .venv and installs the project on first use (or when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-all lint install clean-venv milvus-venv

# The real Milvus server the slow tests start (tests/helpers/servers.py): the PyPI package `milvus` (standalone
# Milvus with embedded etcd, ~1 GB RAM running) in a venv of its own, kept between runs (CI caches .venv-milvus).
MILVUS_VENV := .venv-milvus
MILVUS_PKG  := milvus==2.3.5

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xsearch demo

# pytest exits 5 when it collected no tests: that is a failure here, said out loud.
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest ran no tests (exit 5)" >&2; exit 1; fi; exit $$rc

# Fast suite plus the tests marked slow (CI runs this).
test-all: $(STAMP)
	@$(PY) -m pytest -m '' $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest ran no tests (exit 5)" >&2; exit 1; fi; exit $$rc

# ruff, then the dependency rules in pyproject.toml [tool.importlinter] (serving never imports research, the index
# never imports encoders, ...). cli/ and index/ install as xsearch.cli and xsearch.index (package-dir), which
# import-linter cannot find in the source tree, so it runs in a scratch folder that links them in as installed.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && mkdir "$$tmp/xsearch" && \
	ln -s "$(CURDIR)"/xsearch/* "$$tmp/xsearch/" && ln -s "$(CURDIR)/cli" "$$tmp/xsearch/cli" && \
	ln -s "$(CURDIR)/index" "$$tmp/xsearch/index" && cp pyproject.toml "$$tmp/" && \
	cd "$$tmp" && "$(CURDIR)/$(VENV)/bin/lint-imports" --no-cache

milvus-venv: $(MILVUS_VENV)/bin/milvus-server

$(MILVUS_VENV)/bin/milvus-server:
	@test -x $(MILVUS_VENV)/bin/python || $(PYTHON) -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/pip install --quiet '$(MILVUS_PKG)'

clean-venv:
	rm -rf $(VENV)
