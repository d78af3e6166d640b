#!/usr/bin/env bash
# The main job on the bundled example: train a separable CNN on sklearn's 8x8 digits (offline),
# quantize to int8, generate C, verify it byte for byte against the simulator, print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# The same TensorFlow CPU kernels on every machine (oneDNN is on by default on some CPUs only), so the
# accuracy figures in the README reproduce.
export TF_ENABLE_ONEDNN_OPTS=0
exec .venv/bin/python examples/digits.py --out out/digits "$@"
