# Two commands: `make test` and `make demo`. Both create .venv when it is missing.
# `make demo` trains the quickstart experiment (dSprites, generated locally: no download).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dgm-installed
# Pinned: an unpinned torch pulls the newest build with gigabytes of CUDA packages.
TORCH ?= torch==2.13.0
SOURCES := src tests benchmarks

.PHONY: setup test test-cuda lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

# the CUDA-marked tests (compiled steps with Triton and CUDA graphs, fused Adam, a run on the
# GPU); on a machine without CUDA they skip, each saying why. TORCH: a CUDA build of torch.
test-cuda: $(STAMP)
	$(PY) -m pytest -m cuda -rs

demo: $(STAMP)
	$(VENV)/bin/dgm train quickstart --out runs/quickstart --overwrite

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/step_time.py
	$(PY) benchmarks/rws_step_time.py
	$(PY) benchmarks/loglik_cost.py
	$(PY) benchmarks/flow_step_time.py
	$(PY) benchmarks/task_step_time.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
