# Two commands do all the set-up: `make test` and `make run`.
# Both create .venv if needed and install the project once; a second run skips
# the install (the stamp file changes only when pyproject.toml does).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= sim,train,ros,view,dev,lerobot
# LeRobot's dataset class without its pins (pyproject.toml's `lerobot` extra says why)
LEROBOT_DATASET ?= lerobot-dataset==0.4.4
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# The torch-free core environment: the project with no extras (the robot side) + pytest.
# `make test` runs the core's tests there once, so an import of torch, MuJoCo, rclpy or
# matplotlib on the run-time path fails a test instead of passing unnoticed in the full
# environment (tests that need one of them skip there with pytest.importorskip).
CORE_VENV := .venv-core
CORE_PY := $(CORE_VENV)/bin/python
CORE_STAMP := $(CORE_VENV)/.installed
CORE_TESTS ?= tests/embodied tests/test_import.py tests/test_registry_names.py

.PHONY: install test test-core typecheck run gpu-check lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(if $(findstring lerobot,$(EXTRAS)),$(PY) -m pip install -q --no-deps "$(LEROBOT_DATASET)")
	touch $(STAMP)

install: $(STAMP)

$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_PY) -m pip install -q --upgrade pip
	$(CORE_PY) -m pip install -q -e . "pytest>=8" pytest-timeout "hypothesis>=6"
	@if $(CORE_PY) -c "import importlib.util as u, sys; sys.exit(not any(u.find_spec(m) for m in ('torch', 'mujoco', 'rclpy', 'matplotlib')))"; then \
		echo "$(CORE_VENV) must not have torch, mujoco, rclpy or matplotlib"; exit 1; fi
	touch $(CORE_STAMP)

test-core: $(CORE_STAMP)
	$(CORE_PY) -m pytest -q -p no:cacheprovider $(CORE_TESTS)

# basedpyright over the packages ([tool.basedpyright] in pyproject.toml); clean = 0 errors.
typecheck: $(STAMP)
	$(VENV)/bin/basedpyright

test: $(STAMP) $(CORE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/basedpyright
	$(MAKE) --no-print-directory test-core
	$(VENV)/bin/python -m pytest -q

# The main job, every suite: closed-loop success vs bit rate with the shipped models on the
# Meta-World suite (no training), and the cluttered suite's experts and delay curve (its
# policies come with issue 14), ~6-7 min.
RUN_ARGS ?= --episodes 4 --codecs tokens,jpeg,webp,h264 --budgets 1,4,16 --targets 90,250,700 --out results/run
CLUTTERED_RUN_ARGS ?= --episodes 10 --workers 2 --out results/run/cluttered
run: $(STAMP)
	$(VENV)/bin/embodied eval $(RUN_ARGS)
	$(VENV)/bin/embodied cluttered expert $(CLUTTERED_RUN_ARGS)
	$(VENV)/bin/embodied cluttered delay $(CLUTTERED_RUN_ARGS)
	$(VENV)/bin/embodied inter-bench --out results/run/inter

# The GPU path in one command (docs/gpu.md): onnxruntime-gpu (in place of the CPU onnxruntime
# wheel; `embodied bench gpu --dry-run` prints the way back) and TensorRT into .venv, then CUDA
# and TensorRT against the CPU on every shipped model, ~2-7 min, results/gpu/gpu_check.json.
# Skips with its reason (exit 0) where there is no CUDA GPU. GPU_CHECK_ARGS=--no-install, --full.
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	PY=$(PY) scripts/gpu_check.sh $(GPU_CHECK_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(CORE_VENV) .pytest_cache .ruff_cache
