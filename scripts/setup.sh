#!/usr/bin/env bash
# Set up a virtual environment with the kit and its test tools: bash scripts/setup.sh [VENV_DIR]
# On a machine without an NVIDIA GPU, torch is the CPU build (a bare `pip install torch` on Linux
# would pull several GB of CUDA libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
if ! "$py" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$py" -m pip install -q "torch==2.13.0"
  else
    "$py" -m pip install -q --retries 1 "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi
"$py" -m pip install -q -e ".[test,teach]"
"$py" -m ipykernel install --sys-prefix --name python3 >/dev/null
# Browser tests (tests/browser) use Debian's chromium (never `playwright install`) and a Chinese font
# for the 中文 labels; installed here where apt-get runs as root, else those tests skip with one line.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) \
    || echo "setup: could not install chromium; the browser tests will be skipped"
fi
echo "ready: $venv ($("$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
