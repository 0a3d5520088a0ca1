# hoopd: `make run` starts the demo, `make test` runs every test (slow suites included).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast check lint typecheck fuzz bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,fuzz]'
	touch $(STAMP)

run: $(STAMP)
	packaging/system-deps.sh
	$(VENV)/bin/hoopd demo

test: $(STAMP)
	packaging/system-deps.sh --test
	tests/support/oidc_provider/install.sh
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy hoopd tests bench fuzz

check: lint typecheck test

fuzz: $(STAMP)
	$(PY) fuzz/fuzz_pg_codec.py -max_total_time=$${FUZZ_SECONDS:-60} fuzz/corpus
	$(PY) fuzz/fuzz_sftp_codec.py -max_total_time=$${FUZZ_SECONDS:-60} fuzz/corpus-sftp
	$(PY) fuzz/fuzz_ssh_cert.py -max_total_time=$${FUZZ_SECONDS:-60} fuzz/corpus-ssh-cert
	$(PY) fuzz/fuzz_recording.py -max_total_time=$${FUZZ_SECONDS:-60} fuzz/corpus-recording

bench: $(STAMP)
	packaging/system-deps.sh --bench
	$(PY) bench/pg_bench.py
	$(PY) bench/revocation.py
	$(PY) bench/ssh_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
