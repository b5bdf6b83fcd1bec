# vgsite: `make` builds everything, `make test` tests it. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := all
.PHONY: all figures site serve test clean distclean help

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

clean: ## Delete the built site and the generated figures
	@if [ -x $(BIN)/vgsite ]; then $(BIN)/vgsite clean; else rm -rf site .site-*; find figures -mindepth 1 ! -name README.md -delete; fi

distclean: clean ## Also delete the virtual environment
	rm -rf $(VENV)

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
