"""The host kernel variants (``--target host``): which layers take them, and what they cost.

Bit-exactness is checked where every op is (tests/test_ops_c.py, test_plan_codegen.py, test_fuzz.py ...: each
compares the host variants and the portable reference kernels with the simulator).  Here: the target picks the
variants for conv2d and depthwise conv2d (also as row kernels of streamed chains), ``--target portable`` none, and
the executed x86 instructions of the DS-CNN KWS model (valgrind's callgrind, deterministic) stay within a bound
that a regression of the vectorized loops would break.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from sepgen import __version__, codegen, targets, toolchain, verification, zoo
from sepgen.quantize import quantize


@pytest.fixture(scope="module")
def kws():
    graph = zoo.ds_cnn_kws()
    x = np.random.default_rng(0).normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32)
    return quantize(graph, x, progress=False)


def test_host_target_picks_the_host_kernels_and_portable_none(kws):
    host = codegen.render(kws, "k", "host")["k.c"]
    portable = codegen.render(kws, "k", "portable")["k.c"]
    assert host.count("Every partial sum is within") == 9  # the first conv, 4 depthwise, 4 pointwise
    assert "Every partial sum is within" not in portable
    assert "_requantize(acc" in host and "sepgen_requantize_scaled" in host
    assert "sepgen_requantize_scaled" not in portable and "sepgen_requantize_wide" not in portable
    streamed = codegen.render(kws, "k", "host", "auto")["k.c"]
    assert streamed.count("Every partial sum is within") == 9 and "_rows(const int8_t *input" in streamed
    assert targets.default_schedule("host") == "auto"
    assert targets.variants("portable") == ("portable",)


def test_host_kernels_match_the_simulator_in_every_schedule(kws):
    inputs = verification.random_inputs(kws, 3)
    for schedule in ("layer", "auto", "stream"):
        result = verification.verify_host(kws, inputs, schedule=schedule, target="host")
        assert result.ok, f"{schedule}: {result.mismatch}"


def _instructions(graph, target: str) -> int:
    """Executed instructions of one kws_invoke at -O2 (callgrind)."""
    valgrind = require_tool("valgrind")
    files = dict(codegen.render(graph, "k", target))
    files["bench_main.c"] = codegen.environment().get_template("harness/bench.c.j2").render(
        prefix="k", PREFIX="K", version=__version__)
    exe = toolchain.compile_executable(files, ("-std=c99", "-O2"))
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.bin", Path(tmp) / "cg.out"
        inp.write_bytes(verification.random_inputs(graph, 1)[0].tobytes())
        subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", "--toggle-collect=k_invoke",
                        str(exe), str(inp), "1"], capture_output=True, check=True)
        totals = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
    return int(totals.group(1)) // 2  # the harness runs invoke twice (warm-up + one timed run)


def test_host_kernels_cost_within_the_bound(kws):
    """DS-CNN KWS at -O2 (no -march): measured 1.5 instructions/MAC with the host kernels (GCC 12), 7 with the
    portable ones; the bound leaves room for other compilers' scheduling, not for a loop that stops vectorizing."""
    macs = sum(layer.macs() for layer in kws.layers if hasattr(layer, "macs"))
    host, portable = _instructions(kws, "host"), _instructions(kws, "portable")
    assert host / macs <= 2.2, f"{host / macs:.2f} instructions/MAC"
    assert portable / host >= 3.0, f"host {host:,} vs portable {portable:,} instructions"
