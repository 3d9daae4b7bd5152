# Two set-up commands on a fresh machine: `make figures` (the main job) and `make test`.
# Both create .venv from requirements.lock when it is missing or out of date; both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test figures demo clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The paper figures (2, 5, weight norms) on the offline default: generated long-tailed data, quick CPU
# settings; runs are cached in runs/cache. The paper's recipe: `gradlab figures --scenario cifar100 --device cuda`.
figures: $(STAMP)
	$(BIN)/gradlab figures --quick --out figures

clean:
	rm -rf $(VENV) runs .pytest_cache
