# attredit-bench: every target runs inside .venv, which `install` creates.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= demo
DATA ?= synthfaces
DATA_ROOT ?=
ACCELERATOR ?= auto
DEVICES ?= 1
METHOD ?=
METHODS ?=
ATTRIBUTES ?=
RUN_ARGS = --preset $(PRESET) --data $(DATA) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
	--accelerator $(ACCELERATOR) --devices $(DEVICES) \
	$(if $(METHODS),--methods $(METHODS)) $(if $(ATTRIBUTES),--attributes $(ATTRIBUTES))

.PHONY: install test demo lint train train-all score-all leaderboard plots preview bench clean-cache

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,dlib]'
	touch $@

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

preview: install
	$(PY) -m benchmark preview --data $(DATA) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))

demo: install
	$(PY) -m benchmark run --preset demo --data synthfaces --output results/synthfaces

train: install
	@test -n "$(METHOD)" || (echo "usage: make train METHOD=<name> [PRESET=demo|paper]"; exit 2)
	$(PY) -m benchmark run --stage train $(RUN_ARGS) --methods $(METHOD)

train-all: install
	$(PY) -m benchmark run --stage train $(RUN_ARGS)

score-all: install
	$(PY) -m benchmark run --stage score $(RUN_ARGS)

leaderboard: install
	$(PY) -m benchmark run --stage leaderboard $(RUN_ARGS)

plots: install
	$(PY) -m benchmark run --stage plots $(RUN_ARGS)

bench: install
	$(PY) benchmarks/render_throughput.py
	$(PY) benchmarks/celebahq_preprocess.py
	$(PY) benchmarks/harness_throughput.py

clean-cache:
	rm -rf "$${ATTREDIT_CACHE:-$$HOME/.cache/attredit-bench}"
