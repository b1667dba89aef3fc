# Every target bootstraps .venv (and the Debian tools when root) before it runs.
VENV := .venv
PY := $(VENV)/bin/python
export BATON_HOME ?= $(CURDIR)/.baton

.PHONY: setup demo test ui bench bench-ingest bench-mmt bench-mmt-windows bench-parts clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/baton demo

test: setup
	$(PY) -m pytest -q -ra

ui: setup
	$(VENV)/bin/baton ui

bench: bench-ingest bench-mmt bench-mmt-windows bench-parts

bench-ingest: setup
	$(PY) bench/ingest.py --stride 10

bench-mmt: setup
	$(PY) bench/mmt_generation.py --events 1024 --threads 1

bench-mmt-windows: setup
	$(PY) bench/mmt_windows.py --draws 200

bench-parts: setup
	$(PY) bench/part_baselines.py

clean:
	rm -rf $(BATON_HOME)
