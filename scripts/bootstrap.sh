#!/usr/bin/env bash
# Creates .venv and installs the system tools Baton shells out to. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
APT_PACKAGES="ffmpeg fluidsynth musescore-general-soundfont-small redis-server"

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v fluidsynth >/dev/null || missing+=(fluidsynth)
command -v redis-server >/dev/null || missing+=(redis-server)
# chromium only drives the browser tests (tests/ui): installed when root, else they skip and say why
browser=()
command -v chromium >/dev/null || browser+=(chromium)
if [ ${#browser[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing+=("${browser[@]}")
fi
ls /usr/share/sounds/sf3/MuseScore_General*.sf3 /usr/share/sounds/sf2/MuseScore_General*.sf2 >/dev/null 2>&1 \
  || missing+=(musescore-general-soundfont-small)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Baton needs the Debian packages: ${missing[*]} (all of: $APT_PACKAGES)." >&2
    echo "Install them with: sudo apt-get install -y $APT_PACKAGES" >&2
    exit 1
  fi
fi
if [ ${#browser[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
  echo "note: without the Debian package chromium the browser tests (tests/ui) skip; install it with: sudo apt-get install -y chromium" >&2
fi

stamp=.venv/.baton-installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU wheel first, so that nothing else can pull a CUDA build of torch.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e .
  touch "$stamp"
fi
