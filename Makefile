# Two set-up commands on a fresh machine: `make figures` (the main job) and `make test`.
# Both create .venv from requirements.lock when it is missing or out of date, and make Fashion-MNIST
# available (Debian's dataset-fashion-mnist where apt and root are there, else torchvision's download);
# `make test` also installs Debian's chromium for tests/test_browser.py (scripts/get_chromium.sh);
# both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv data test figures tables docs clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	@PYTHON=$(BIN)/python bash scripts/get_fashion_mnist.sh

test: data
	@bash scripts/get_chromium.sh
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

# The paper figures (2, 5, weight norms, 4) on Fashion-MNIST-LT over 3 seeds, the short CPU protocol, runs
# cached in runs/cache. Full protocol: `gradlab figures`; the paper's recipe: `gradlab figures --scenario cifar100 --device cuda`.
figures: data
	$(BIN)/gradlab figures --quick --out figures

# The paper's central claims with the same protocol (main results in lt/ltio x LFS/LFH, ablation, imbalanced
# forgetting, Fig. 5 over 5 seeds at two lengths) into figures/tables/; shares runs/cache with `make figures`.
tables: data
	$(BIN)/gradlab figures --tables --quick --out figures --yes

# The documentation site into build/site (look at it: .venv/bin/python -m http.server -d build/site): the
# notebooks executed with tiny settings into build/docs_notebooks (scripts/docs_notebooks.py, about 1.5 min on
# 2 cores; kept until a notebook or gradlab changes), then `mkdocs build --strict` (MkDocs Material,
# mkdocstrings, mkdocs-jupyter; mkdocs.yml). `make test` builds it with --strict too (tests/test_docs_site.py).
docs: $(STAMP)
	$(BIN)/python scripts/docs_notebooks.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) runs .pytest_cache
