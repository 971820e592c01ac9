#!/usr/bin/env bash
# README command (2): set up and run the whole test suite, notebooks included, in quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh .venv
export KIT_QUICK=${KIT_QUICK:-1}
exec .venv/bin/python -m pytest --nbmake --nbmake-timeout=1800 "$@"
