# The two set-up commands of the README: `make run` and `make test`.
# Each creates the virtual environment on first use, so a fresh clone needs
# nothing but python3 (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-all bench bench-quick binary zipapp clean soak reliability api-docs mutation

$(STAMP): requirements.txt requirements-test.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $(STAMP)

BUILD_STAMP := $(VENV)/.build-installed
$(BUILD_STAMP): $(STAMP) requirements-build.txt
	$(BIN)/pip install --quiet -r requirements-build.txt
	touch $(BUILD_STAMP)

run: $(STAMP)            ## start the server: sandbox mode, embedded store
	$(BIN)/python server.py $(ARGS)

test: $(STAMP)           ## the suite CI runs (browser tests: Debian's chromium; deployment tests: nginx, binutils; monitoring: promtool)
	.ci/ensure-chromium
	.ci/ensure-deploy-tools --optional
	.ci/ensure-promtool --optional
	$(BIN)/python -m pytest $(ARGS)

test-all: $(STAMP)       ## also the slow battery
	.ci/ensure-chromium
	.ci/ensure-deploy-tools --optional
	.ci/ensure-promtool --optional
	$(BIN)/python -m pytest -m "slow or not slow" $(ARGS)

binary: $(BUILD_STAMP)   ## one executable, no Python needed on the target: dist/wxpay-server (docs/deploy.md)
	.ci/ensure-deploy-tools binutils
	$(BIN)/python deploy/build_binary.py $(ARGS)

zipapp: $(STAMP)         ## one-file server: dist/wxpay-server.pyz (run: python3 dist/wxpay-server.pyz)
	$(BIN)/pip install --quiet shiv
	rm -rf build && mkdir -p dist
	$(BIN)/shiv --compressed --reproducible -c wxpay-server -o dist/wxpay-server.pyz -r requirements.txt .

MINUTES ?= 10
soak: $(STAMP)           ## a bounded soak of mixed sandbox traffic (MINUTES=10), figures into build/battery
	$(BIN)/python -m tests.battery.soak --minutes $(MINUTES)

reliability: $(STAMP)    ## the whole battery (slow cases too) and a soak, then writes docs/RELIABILITY.md
	rm -rf build/battery
	$(BIN)/python -m pytest -m "slow or not slow" tests/battery
	$(BIN)/python -m pytest -m slow tests/server/test_fuzz_api.py
	$(BIN)/python -m tests.battery.soak --minutes $(MINUTES)
	$(BIN)/python -m tests.battery.report

MUTATION_STAMP := $(VENV)/.mutation-installed
$(MUTATION_STAMP): $(STAMP) requirements-mutation.txt
	$(BIN)/pip install --quiet -r requirements-mutation.txt
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)  ## mutation testing of the state moves, payment confirmation, notifies, signing (docs/MUTATION.md)
	$(BIN)/python -m tests.mutation.run $(ARGS)

api-docs: $(STAMP)       ## docs/api.md and docs/openapi.json from handlers/openapi.py
	$(BIN)/python server.py openapi --write-docs

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)    ## docs/BENCHMARKS.md: ours vs the relay, the bare hello and the peer (docs/BENCHMARKS.md says how)
	$(BIN)/python bench/run.py $(ARGS)

bench-quick: $(BENCH_STAMP)  ## the same rows, short (about a minute, indicative only)
	$(BIN)/python bench/run.py --quick $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
