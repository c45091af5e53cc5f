# lienthong — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := libs/common libs/sdk $(addprefix services/,gateway directory docstore sigverify routing statistics)
STAMP := $(VENV)/.installed
# Test infrastructure runs on its own ports so it never disturbs a `make run` in progress.
TEST_KAFKA_PORT ?= 19092
TEST_PGPORT ?= 55432

.PHONY: help setup run test test-tools test-unit test-e2e lint proto proto-check chart-check bench chaos fuzz clean kube-up kube-e2e kube-down

help:
	@echo "make run          start Kafka and the six services locally, seed the demo (Ctrl-C stops)"
	@echo "make test         lint, proto-check, unit, integration and end-to-end tests (real Kafka + PostgreSQL)"
	@echo "make setup        only create $(VENV) with the lienthong CLI"
	@echo "make proto        regenerate Python code from protos/;  make proto-check  fail on drift"
	@echo "make chart-check  helm lint/template + schema validation of the chart"
	@echo "make bench        pipeline and per-service benchmarks (bench/results/latest.json, pipeline.png)"
	@echo "make chaos        kill every service, restart Kafka and PostgreSQL under load; check exactly-once"
	@echo "make fuzz         fuzz the edXML readers and the PDF verifier (atheris + hypothesis)"
	@echo "make kube-up      a single-node Kubernetes on this machine with the chart installed (root; docs/kubernetes.md)"
	@echo "make kube-e2e     kube-up, the end-to-end checks through the cluster, kube-down"
	@echo "make kube-down    remove everything kube-up made (caches in /var/cache/lienthong-kube stay)"

setup: $(STAMP)

$(STAMP): constraints.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11) is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt $(foreach p,$(PACKAGES),-e $(p)) \
		pytest mypy mypy-protobuf ruff grpcio-tools types-protobuf grpc-stubs hypothesis schemathesis
	touch $(STAMP)

run: setup
	$(BIN)/lienthong run

proto: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python protos/generate.py libs/common/src

proto-check: setup
	@tmp=$$(mktemp -d); \
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python protos/generate.py $$tmp >/dev/null || exit 1; \
	if diff -r -q $$tmp/lienthong libs/common/src/lienthong -x __pycache__; then \
		echo "proto-check: generated code matches protos/"; rm -rf $$tmp; \
	else echo "proto-check: generated code has drifted from protos/; run 'make proto'"; rm -rf $$tmp; exit 1; fi

lint: setup
	$(BIN)/ruff check libs services e2e-tests
	$(BIN)/mypy -p lienthong_common -p lienthong_sdk $(foreach s,gateway directory docstore sigverify routing statistics,-p lienthong_$(s))

# xmlsec1 (Debian's) signs and verifies envelopes independently of the platform in the tests.
test-tools:
	@bash infra/xmlsec1.sh ensure >/dev/null

test-unit: setup test-tools
	$(BIN)/python -m pytest -q libs services fuzz

test-e2e: setup test-tools
	@# The harness starts (and resets) its own broker and PostgreSQL through infra/; stop both after.
	@trap 'KAFKA_PORT=$(TEST_KAFKA_PORT) KAFKA_CONTROLLER_PORT=$$(( $(TEST_KAFKA_PORT) + 1 )) bash infra/kafka.sh stop >/dev/null 2>&1; PGPORT=$(TEST_PGPORT) bash infra/postgres.sh stop >/dev/null 2>&1' EXIT; \
	LIENTHONG_TEST_KAFKA_PORT=$(TEST_KAFKA_PORT) LIENTHONG_TEST_PGPORT=$(TEST_PGPORT) \
		$(BIN)/python -m pytest -q e2e-tests

test: setup proto-check lint chart-check test-unit test-e2e

chart-check: setup
	bash infra/chart-check.sh

# The pipeline under stepped load (real Kafka, PostgreSQL, six services) plus every
# bench/bench_<area>.py (--quick unless BENCH_FULL=1): bench/results/latest.json and a chart.
bench: setup
	$(BIN)/pip install -q -c constraints.txt matplotlib
	LIENTHONG_BENCH_PGPORT=$${LIENTHONG_BENCH_PGPORT:-$(TEST_PGPORT)} $(BIN)/python bench/run.py

# SIGKILL each service, restart Kafka and PostgreSQL (its own instance), all under load.
chaos: setup
	$(BIN)/python chaos/run.py

# Coverage-guided (atheris) then property-based (hypothesis) fuzzing, bounded.
FUZZ_SECONDS ?= 60
fuzz: setup
	$(BIN)/pip install -q -c constraints.txt atheris hypothesis
	mkdir -p fuzz/findings
	for target in edxml status pdf; do \
		$(BIN)/python fuzz/atheris_fuzz.py $$target -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=fuzz/findings/ -print_final_stats=1 || exit 1; \
	done
	FUZZ_EXAMPLES=3000 $(BIN)/python -m pytest -q fuzz

clean:
	rm -rf .data

# A real single-node Kubernetes on this machine (root; infra/kube/, docs/kubernetes.md): binaries
# from the Go module proxy, images built locally, the chart installed with kube-local values.
# Never part of `make test`; run `make kube-e2e` whenever the chart, a Dockerfile or a service's
# start-up changes.
kube-up: setup
	bash infra/kube/up.sh

kube-e2e: setup
	@status=0; bash infra/kube/up.sh && $(BIN)/python infra/kube/e2e.py || status=$$?; \
	bash infra/kube/down.sh || status=1; \
	echo "kube-e2e: exit $$status"; exit $$status

kube-down:
	bash infra/kube/down.sh
