# Every target bootstraps .venv (and the Debian tools when root) before it runs.
VENV := .venv
PY := $(VENV)/bin/python
export BATON_HOME ?= $(CURDIR)/.baton

.PHONY: setup demo test ui bench readme-figures clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/baton demo

test: setup
	$(PY) -m pytest -q -ra

ui: setup
	$(VENV)/bin/baton ui

bench: setup
	$(PY) bench/ingest.py --stride 10

clean:
	rm -rf $(BATON_HOME)
