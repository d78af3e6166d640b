#!/usr/bin/env bash
# Installs everything sepgen's example and tests need on a fresh Debian machine (run as root or with sudo).
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
# MicroPython native modules and the unix port are built with make (tests/test_micropython.py).
command -v make >/dev/null || need_apt+=(make)
# The generated C is also checked with clang -Weverything -Werror (tests/test_c_warnings.py).
command -v clang >/dev/null || need_apt+=(clang)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip python3-venv)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
# Cortex-M targets (sepgen verify/profile --target cortex-m4|cortex-m7|cortex-m55): cross compiler, newlib, QEMU.
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi)
[ -d /usr/lib/arm-none-eabi/newlib ] || need_apt+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
# Executed host instructions of the host kernels (tests/test_host_kernels.py, benchmarks/host_instructions.py).
command -v valgrind >/dev/null || need_apt+=(valgrind)
# The HTML report is rendered once in a headless browser (tests/test_report_html.py).
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# A virtual environment that can see already-installed packages (saves re-downloading TensorFlow).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[keras,tflite,test,micropython]"
