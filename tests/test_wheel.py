"""The wheel ships the templates: build it, install it into a scratch directory, render every template."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import require_module

from sepgen import firmware

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys, numpy as np, sepgen
from sepgen import codegen, verification
from sepgen.frontends.builder import GraphBuilder
from sepgen.ir import LAYER_TYPES
assert str(codegen.templates_dir()).startswith(sys.argv[1]), codegen.templates_dir()
rng = np.random.default_rng(0)
r = lambda *s: (rng.normal(size=s) * 0.3).astype(np.float32)
b = GraphBuilder((9, 9, 2))
a = b.conv2d("c", b.rescaling("scale_in", b.input, 0.5, 0.25), r(3, 3, 2, 4), r(4), 2, 1, "same", "relu")
d = b.depthwise_conv2d("dw", a, r(3, 3, 4, 1), r(4), padding="same")
d = b.conv2d("pw", d, r(1, 1, 4, 4), r(4))
y = b.add("add", [a, d])
y = b.multiply("se", [y, b.global_avg_pool2d("se_gap", y)])  # per-channel gate
y = b.add("bias", [y], constant=np.linspace(-1, 1, 4))
y = b.concatenate("cat", [y, b.leaky_relu("cat_leaky", y, 0.5)])  # inputs rescaled
y = b.conv2d("cat_pw", y, r(1, 1, 8, 4))
y = b.minimum("min", [b.maximum("max", [y, b.leaky_relu("max_leaky", y, 0.1)]), y])
y = b.upsample_nearest("up", y, (1, 2))
y = b.pad("pad", y, ((1, 0), (0, 2)))
y = b.max_pool2d("mp", y, 2, 1, "same")
y = b.activation("mp_relu6", y, "relu6")
y = b.leaky_relu("leaky", y, 0.2)
y = b.activation("hswish", y, "hard_swish")
y = b.activation("sig", y, "sigmoid")
y = b.avg_pool2d("ap", y, 2)
y = b.global_avg_pool2d("gap", y)
y = b.dense("fc", b.reshape("rs", y, (4,)), r(4, 3), r(3), "softmax")
g = b.build(y)
ops = {layer.op for layer in g.layers}
assert ops == set(LAYER_TYPES), set(LAYER_TYPES) - ops  # every layer template is rendered
q = sepgen.quantize(g, rng.normal(size=(16, 9, 9, 2)).astype(np.float32), progress=False)
result = verification.verify_host(q, verification.random_inputs(q, 8))
assert result.ok, result.mismatch
from sepgen.micropython import render  # every op's MicroPython kernel template and the fixed-point translation
py = render(q, "m", ("python", "natmod", "usercmod"), ["m.c"])
assert "def _layer" in py["m.py"] and "def _fp_" in py["m.py"] and "@micropython.viper" in py["m_viper.py"]
from sepgen import layouts
built = layouts.render(tuple(layouts.LAYOUTS), "m", {"m.c": "", "m.h": ""})  # every layout template
assert {"CMakeLists.txt", "cmake/arm-none-eabi.cmake", "library.properties", "library.json", "zephyr/module.yml",
        "zephyr/Kconfig", "zephyr/CMakeLists.txt"} <= set(built), sorted(built)
print("wheel-ok")
"""


def test_wheel_contains_and_renders_templates(tmp_path):
    require_module("hatchling")
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(ROOT)], check=True)
    wheel = next(wheel_dir.glob("sepgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("sepgen/templates/model.c.j2", "sepgen/templates/model.h.j2",
                     "sepgen/templates/sepgen_fixedpoint.h", "sepgen/templates/harness/host.c.j2",
                     "sepgen/firmware_src/sepgen_startup.c", "sepgen/firmware_src/mps2-an386.ld",
                     "sepgen/templates/layouts/cmake/CMakeLists.txt.j2", "sepgen/templates/layouts/zephyr/module.yml.j2",
                     "sepgen/templates/report/report.html.j2", "sepgen/templates/report/charts.svg.j2"):
        assert template in names
    for core in firmware.TARGETS.values():  # every memory map the Cortex-M builds link with
        for memory_map in core.memory_maps:
            assert f"sepgen/firmware_src/{memory_map}.ld" in names
    for op in ("conv2d", "depthwise_conv2d", "fully_connected", "softmax"):
        assert f"sepgen/templates/layers/{op}.c.j2" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(target)], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0 and "wheel-ok" in proc.stdout, proc.stderr[-3000:]
