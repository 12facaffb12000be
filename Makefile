# haunt-fm — `make run` starts the service on its own embedded PostgreSQL, `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8321
# Where torch comes from. Empty: pip's default (on these machines, the CPU build on disk).
# Elsewhere use `make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu` to avoid a CUDA build.
TORCH_INDEX_URL ?=

.PHONY: setup run worker test lint typecheck unit bench image-check clean

setup: $(STAMP)

# Idempotent: only re-installs when pyproject.toml changes. torch is pinned to the CPU
# build (2.13.0) that pip finds on this disk, installed first so nothing pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/haunt-fm serve --host $(HOST) --port $(PORT)

worker: setup
	$(BIN)/haunt-fm worker

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy src/haunt_fm

test: setup
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/haunt_fm
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/ingest.py

# Builds deploy/Dockerfile for real (buildah, FROM a debootstrapped Debian bookworm) and runs
# the image's own entrypoint under chroot against a local PostgreSQL. Root; minutes the first
# time; not part of `make test`. See scripts/image-check.sh.
image-check: setup
	bash scripts/image-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
