#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh; safe to run repeatedly.
# Usage: source scripts/bootstrap.sh [requirements-file]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQUIREMENTS="${1:-requirements.txt}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  echo "bootstrap: installing ffmpeg with apt-get"
  apt_install ffmpeg
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    echo "bootstrap: installing python3-venv with apt-get"
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
# Reinstall only when the requirements changed since the last successful install.
STAMP=".venv/.installed-$(cat requirements*.txt constraints.txt | sha256sum | cut -c1-16)-$(basename "$REQUIREMENTS")"
if [ ! -f "$STAMP" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$REQUIREMENTS" -c constraints.txt
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
