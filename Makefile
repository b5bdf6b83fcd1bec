# vgsite: `make` builds everything, `make test` tests it. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
# Where pip finds PyTorch's CPU build when it is not on this machine already, e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu (the Pages workflow passes it; PyPI's torch is the CUDA build).
TORCH_INDEX ?=
PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
# The tests in parallel, one worker per core (pytest-xdist); a group of tests that share a fixture stays on one worker.
PYTEST_FLAGS ?= -n auto --dist loadgroup
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := all
.PHONY: all install lock figures site serve test verify bench deploy clean distclean help

all: site ## Install if needed, run the out-of-date experiments, build the site into site/

install: $(STAMP) ## Create .venv/ with the exact versions in requirements.lock (again when it changes)

$(STAMP): $(LOCK) pyproject.toml  # the virtual environment, rebuilt when the pinned versions change
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_INDEX) -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m vgsite.katex fetch  # KaTeX's stylesheet and fonts, checked against npm's sha512
	touch $@

# pip-compile resolves pyproject.toml (with the `test` extra) to one version of every package, transitive ones
# included. It keeps the pins that still fit; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest.
PIP_TOOLS := $(VENV)/pip-tools
LOCK_FLAGS ?=
lock: ## Regenerate requirements.lock from pyproject.toml (pip-compile); then `make` installs it
	test -x $(PIP_TOOLS)/bin/python || $(PYTHON) -m venv $(PIP_TOOLS)
	$(PIP_TOOLS)/bin/python -m pip install --quiet pip-tools==7.6.2
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/bin/pip-compile --quiet --extra test --strip-extras \
	  --allow-unsafe --no-emit-index-url --no-emit-find-links $(PIP_INDEX) $(LOCK_FLAGS) --output-file $(LOCK) pyproject.toml
	@! grep -nE '^(nvidia-|triton)' $(LOCK) || { echo "$(LOCK): torch resolved to the CUDA build;" \
	  "set TORCH_INDEX=https://download.pytorch.org/whl/cpu and run make lock again"; exit 1; }

figures: $(STAMP) ## Run the experiments that are out of date (vgsite figures)
	$(BIN)/vgsite figures

site: $(STAMP) ## Figures, then the site into site/ (vgsite build)
	$(BIN)/vgsite build

serve: $(STAMP) ## Live preview on http://127.0.0.1:8000, reloading when a page or a figure changes
	$(BIN)/vgsite serve

test: site ## Build, then run the test suite (in parallel: PYTEST_FLAGS=-n0 runs it in one process)
	$(BIN)/python -m pytest $(PYTEST_FLAGS)

verify: figures ## Rerun every training experiment with other seeds and threads; every page's check() must hold
	$(BIN)/vgsite verify $(VERIFY_FLAGS)

# Lighthouse from npm at the version vgsite/bench.py pins, under .venv/; it runs Debian's chromium, never a downloaded one.
LIGHTHOUSE := $(shell sed -n 's/^LIGHTHOUSE = "\([0-9.]*\)".*/\1/p' vgsite/bench.py)
LIGHTHOUSE_STAMP := $(VENV)/lighthouse/.installed-$(LIGHTHOUSE)
bench: site $(LIGHTHOUSE_STAMP) ## Lighthouse (mobile) and gzipped weight of every page; flags perf < 0.95, a11y < 1, > 400 kB
	$(BIN)/python -m vgsite.bench site

$(LIGHTHOUSE_STAMP): $(STAMP)
	npm install --prefix $(VENV)/lighthouse --no-audit --no-fund --save-exact lighthouse@$(LIGHTHOUSE)
	touch $@

deploy: $(STAMP) ## Publish from this machine: mkdocs gh-deploy to the gh-pages branch (set SITE_URL first)
	@test -n "$$SITE_URL" || { echo "Set SITE_URL, e.g. SITE_URL=https://OWNER.github.io/REPO/ make deploy"; exit 2; }
	$(MAKE) site
	$(BIN)/python -m mkdocs gh-deploy --strict --force --no-history --message "Deploy {sha} with MkDocs {version}"

clean: ## Delete the built site and the generated figures
	@if [ -x $(BIN)/vgsite ]; then $(BIN)/vgsite clean; else rm -rf site .site-*; if [ -d figures ]; then find figures -mindepth 1 ! -name README.md -delete; fi; fi

distclean: clean ## Also delete the virtual environment
	rm -rf $(VENV)

.PHONY: bench-explorer
bench-explorer: $(STAMP) ## Time the explorer's recompute (depth 100, widths 64 and 256, both engines) in headless Chromium
	$(BIN)/python -m vgsite.bench_explorer

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
