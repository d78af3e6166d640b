#!/usr/bin/env bash
# The main job on the bundled example: train a separable CNN on sklearn's 8x8 digits (offline),
# quantize to int8, generate C, verify it byte for byte against the simulator, print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python examples/digits.py --out out/digits "$@"
