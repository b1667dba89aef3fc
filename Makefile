# Every target bootstraps .venv (and the Debian tools when root) before it runs.
VENV := .venv
PY := $(VENV)/bin/python
export BATON_HOME ?= $(CURDIR)/.baton

.PHONY: setup demo test ui bench bench-ingest bench-mmt bench-mmt-windows bench-parts bench-align bench-reads bench-midi bench-video bench-dask clean

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

# synctoolbox 1.4.2 pins numba < 0.66, music21 < 10 and pandas < 3, older than the project runs, and
# works with the newer ones, so it is installed without its pins; libfmp and IPython are what it imports.
bench-align: setup
	$(PY) -m pip install --no-deps synctoolbox==1.4.2 libfmp==1.3.0
	$(PY) -m pip install "ipython>=8.10,<9"
	$(PY) bench/alignment.py --set hard --n 12

bench-reads: setup
	$(PY) bench/verified_reads.py

bench-midi: setup
	$(PY) bench/midi_read.py --files 1500 --workers 2 --out bench/results

bench-video: setup
	$(PY) bench/video_pipeline.py --videos 4 --seconds 32 --repeats 3

bench-dask: setup
	$(PY) bench/dask_ingest.py --files 240 --shards 8 --workers 1 2

clean:
	rm -rf $(BATON_HOME)
