"""The bundled examples run end to end (the README's main job is examples/digits.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import require_module, require_tool

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=900, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_digits_main_job(tmp_path):
    require_module("tensorflow")
    require_module("sklearn")
    proc = run_example("digits.py", "--out", str(tmp_path / "digits"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "PASS" in out and out.count("ok: generated C == simulator, byte for byte") == 2
    assert "total" in out and "RAM:" in out
    # the main job prints sepgen's lines only: nothing from TensorFlow or the TFLite converter
    assert proc.stderr.strip() == "", proc.stderr[-3000:]
    for noise in ("Saved artifact", "TensorSpec", "fully_quantize", "WARNING", "oneDNN"):
        assert noise not in out, noise
    generated = tmp_path / "digits" / "c"
    assert sorted(p.name for p in generated.iterdir()) == [
        "digits.c", "digits.h", "digits.sepgen.json", "digits.sepgen.npz", "sepgen_fixedpoint.h"]
    require_tool("qemu-system-arm")
    for target in ("cortex-m4", "cortex-m7", "cortex-m55"):
        cmd = [sys.executable, "-m", "sepgen.cli", "verify", str(generated), "--target", target, "--count", "20"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0 and f"({target})" in run.stdout, run.stderr


def test_vgg_cifar10_example(tmp_path):
    proc = run_example("vgg_cifar10.py", "--out", str(tmp_path / "vgg"), "--inputs", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "params: SeparableConv2D 174,821 vs Conv2D 1,186,378" in proc.stdout
    assert "verify: ok, byte-exact" in proc.stdout
    for target in ("cortex-m4", "cortex-m7", "cortex-m55"):  # the example's C on the emulated boards
        require_tool("qemu-system-arm")
        cmd = [sys.executable, "-m", "sepgen.cli", "verify", str(tmp_path / "vgg"), "--target", target, "--count", "2"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0 and f"({target})" in run.stdout, run.stderr
