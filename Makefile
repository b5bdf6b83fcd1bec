# vgsite: `make` builds everything, `make test` tests it. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := all
.PHONY: all figures site serve test bench deploy clean distclean help

all: site ## Install if needed, run the out-of-date experiments, build the site into site/

$(STAMP): pyproject.toml  # the virtual environment, rebuilt when the dependencies change
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

figures: $(STAMP) ## Run the experiments that are out of date (vgsite figures)
	$(BIN)/vgsite figures

site: $(STAMP) ## Figures, then the site into site/ (vgsite build)
	$(BIN)/vgsite build

serve: $(STAMP) ## Live preview on http://127.0.0.1:8000, reloading when a page or a figure changes
	$(BIN)/vgsite serve

test: site ## Build, then run the test suite
	$(BIN)/python -m pytest

bench: site ## Page weight: bytes each page fetches, heaviest first; flags pages over 1.5 MB, oversized images
	$(BIN)/python -m vgsite.bench site

deploy: $(STAMP) ## Publish from this machine: mkdocs gh-deploy to the gh-pages branch (set SITE_URL first)
	@test -n "$$SITE_URL" || { echo "Set SITE_URL, e.g. SITE_URL=https://OWNER.github.io/REPO/ make deploy"; exit 2; }
	$(MAKE) site
	$(BIN)/python -m mkdocs gh-deploy --strict --force --no-history --message "Deploy {sha} with MkDocs {version}"

clean: ## Delete the built site and the generated figures
	@if [ -x $(BIN)/vgsite ]; then $(BIN)/vgsite clean; else rm -rf site .site-*; find figures -mindepth 1 ! -name README.md -delete; fi

distclean: clean ## Also delete the virtual environment
	rm -rf $(VENV)

.PHONY: bench-explorer
bench-explorer: $(STAMP) ## Time the explorer's recompute (depth 100, widths 64 and 256, both engines) in headless Chromium
	$(BIN)/python -m vgsite.bench_explorer

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
