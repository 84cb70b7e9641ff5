# Everything goes through scripts/bootstrap.sh (idempotent): apt packages if missing,
# .venv, and the project installed with its dev extras.
# Without make: scripts/bootstrap.sh && .venv/bin/python -m zoneapp.stack run

PY := .venv/bin/python
# Directories mypy checks (only those holding Python files; the list grows with the repo).
LINT_DIRS := $(foreach d,zoneapp agents tables bench tests scripts,$(if $(wildcard $(d)/*.py $(d)/*/*.py),$(d)))

.PHONY: run test lint bench bootstrap fuzz faults

bootstrap:
	scripts/bootstrap.sh

# `make run OTLP=http://localhost:4318` sends the demo's traces to Jaeger (or any OTLP
# collector); the standard OTEL_* variables work too.
run: bootstrap
	$(PY) -m zoneapp.stack run $(if $(OTLP),--otlp-endpoint $(OTLP))

# The integration suite runs on Apache Kafka (the broker users run); `make test
# ZONEAPP_STACK_BROKER=tansu` is the fast lane. `make run` stays on tansu (README: Brokers).
test: bootstrap
	ZONEAPP_STACK_BROKER=$(or $(ZONEAPP_STACK_BROKER),kafka) $(PY) -m pytest -q

lint:
	scripts/bootstrap.sh --no-system
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy $(LINT_DIRS)  # strict = true in pyproject.toml
	.venv/bin/lint-imports  # the layers of ARCHITECTURE.md ([tool.importlinter])

# Property tests over the boundary guard at 10,000 examples (the test suite runs 200).
fuzz: bootstrap
	ZONEAPP_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q tests/unit/pipeline/test_guard_fuzz.py

# The fault suite in full: 4,000 records a scenario, ten kill-and-restart runs (the
# test suite runs the short form).
faults: bootstrap
	ZONEAPP_FAULTS=full $(PY) -m pytest -q -s tests/faults

# `make bench ARGS=--full` for the 1M-record memory run; `.venv/bin/python -m bench -h`.
bench: bootstrap
	$(PY) -c "import presidio_analyzer, presidio_anonymizer" 2>/dev/null \
	  || $(PY) -m pip install -q -c requirements.lock -e '.[dev,bench]'
	$(PY) -m bench $(ARGS)
