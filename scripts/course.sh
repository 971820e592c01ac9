#!/usr/bin/env bash
# README command (1): set up and run the whole lesson sequence headless on the built-in model.
# Extra arguments go to `python -m kit course` (e.g. --quick, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh .venv
exec .venv/bin/python -m kit course "$@"
