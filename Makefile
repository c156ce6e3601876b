# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Omniglot is found without help (--data, $EDGEMETA_DATA, ../shared/data/omniglot beside the checkout, or
# `edgemeta data download`'s folder); without it the demo runs on the embedded demo set.

.PHONY: install demo train-quick test test-fast clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[train,dev]'
	touch $@

# The main job on an embedded default: the shipped learner learns held-out characters live from
# the synthetic camera (no camera, no download) and prints its learning curve.
demo: install
	$(BIN)/edgemeta demo --headless

# A short meta-training + evaluation run from scratch (a few minutes on 2 CPU cores).
train-quick: install
	@$(BIN)/edgemeta data check >/dev/null 2>&1 || $(BIN)/edgemeta data download
	$(BIN)/edgemeta train --model mann --out runs/quick --episodes 3200 --batch-size 16 --lr 3e-3 \
		--val-every 50 --val-episodes 100 --eval-episodes 300

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
