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

# Until the paper-figure pipeline lands: one class-incremental run on generated long-tailed data.
figures: $(STAMP)
	$(BIN)/gradlab run --scenario synthetic --method finetune --order lt --imbalance 100 --base 10 --tasks 3 \
		--memory 20 --epochs 2 --seed 0 --out runs/demo --overwrite

clean:
	rm -rf $(VENV) runs .pytest_cache
