"""The generated C compiles without a single warning under clang -Weverything -Werror, and still matches.

gcc's strict set (-Wall -Wextra -Wconversion -Wshadow -Wsign-conversion -pedantic -Werror,
sepgen.toolchain.WARNINGS) is enforced by every host and Cortex-M build, so every verified model
proves it; this module adds clang's every warning.  Models: one test per op/option family -- the
cases of tests/test_ops_c.py that the default (CI) run executes (every option value at least once:
kernel, stride, padding, depth multiplier, dilation, pools, softmax, mean, add, pad, dense, reshape,
extreme zero points), rebuilt with the same builders -- plus the zoo's DS-CNN KWS and separable VGG.
Each model is linked with the host harness twice: as a user compiles it (no trace hook) and with
-D<PREFIX>_TRACE, which is then run: the clang build equals the simulator, byte for byte, too.

The one exception is -Wunsafe-buffer-usage (clang >= 16): clang's "C++ Safe Buffers" model flags
every array subscript and pointer offset and offers only C++ containers as the fix, so no C
program that indexes an array can satisfy it; it is turned off when the compiler knows it.
clang missing: skip on a laptop, fail in CI (conftest.require_tool).
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import test_ops_c
from conftest import require_tool
from util import quantized, rand

from sepgen import codegen, toolchain, verification, zoo
from sepgen.frontends.builder import GraphBuilder

CLANG_WARNINGS = ("-std=c99", "-Weverything", "-Werror")
PREFIX = "model"
FAMILIES = sorted(name for name, fn in vars(test_ops_c).items() if name.startswith("test_") and callable(fn))
ZOO = {"zoo_ds_cnn_kws": lambda: zoo.ds_cnn_kws(), "zoo_vgg_cifar10_separable": lambda: zoo.vgg_cifar10(True)}


@pytest.fixture(scope="module")
def clang() -> tuple[toolchain.Compiler, tuple[str, ...]]:
    """clang and its flags: every warning, an error (-Wunsafe-buffer-usage aside, see the module doc)."""
    path = require_tool("clang")
    probe = subprocess.run([path, "-Werror", "-Wunsafe-buffer-usage", "-fsyntax-only", "-x", "c", "-"],
                           input="", capture_output=True, text=True)
    cpp_only = ("-Wno-unsafe-buffer-usage",) if probe.returncode == 0 else ()
    return toolchain.Compiler(path), CLANG_WARNINGS + cpp_only + ("-O2",)


def _ci_cases(test):
    """Keyword arguments of every case the default run of ``test`` executes (its params not marked slow)."""
    grids = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = [n.strip() for n in mark.args[0].split(",")]
        cases = []
        for param in mark.args[1]:
            if hasattr(param, "marks"):  # pytest.param(...)
                values, marks = param.values, param.marks
            else:
                values, marks = ((param,) if len(names) == 1 else tuple(param)), ()
            if not any(m.name == "slow" for m in marks):
                cases.append(dict(zip(names, values)))
        grids.append(cases)
    for combo in itertools.product(*grids):
        yield {k: v for case in combo for k, v in case.items()}


def _family_models(family: str) -> list[tuple[object, np.ndarray]]:
    """(int8 graph, inputs) of every CI case of one test of tests/test_ops_c.py, built by that test itself."""
    if family in ZOO:
        return [quantized(ZOO[family](), np.random.default_rng(0))]
    captured = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_ops_c, "assert_c_matches",
                      lambda graph, inputs, sanitize=True: captured.append((graph, inputs)))
        for kwargs in _ci_cases(getattr(test_ops_c, family)):
            getattr(test_ops_c, family)(**kwargs)
    return captured


def _run(exe: Path, graph, inputs: np.ndarray, schedule: str = "layer", reuse: bool = False
         ) -> dict[str, np.ndarray]:
    """Run a trace build on ``inputs``: each traced tensor's values (the layers ``schedule`` keeps whole)."""
    with tempfile.TemporaryDirectory(prefix="sepgen-clang-") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "trace.bin"
        in_path.write_bytes(np.ascontiguousarray(inputs, dtype=np.int8).tobytes())
        proc = toolchain.run([str(exe), str(in_path), str(out_path)])
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
        return verification.parse_trace(graph, out_path.read_bytes(), len(inputs), "clang build", schedule, reuse)


@pytest.mark.parametrize("family", FAMILIES + sorted(ZOO))
def test_clang_everything_is_clean_and_exact(family, clang):
    compiler, flags = clang
    models = _family_models(family)
    assert models, f"no CI cases found in tests/test_ops_c.py::{family}"
    for graph, inputs in models:
        files = codegen.render(graph, PREFIX)
        files["sepgen_harness.c"] = codegen.render_harness(graph, PREFIX)
        # ToolchainError (with clang's diagnostics) on the first warning
        toolchain.compile_executable(files, flags, compiler=compiler)
        exe = toolchain.compile_executable(files, flags, defines=(f"{PREFIX.upper()}_TRACE",), compiler=compiler)
        result = verification.compare(graph, inputs, _run(exe, graph, inputs))
        assert result.ok, f"clang build: {result.mismatch}"


def wide_chain():
    """A streamed chain whose whole output (40x40x48, read by a Dense) makes the arena > 64 KiB: int32 row tables."""
    rng = np.random.default_rng(5)
    b = GraphBuilder((40, 40, 3))
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 16), rand(rng, 16), 1, 1, "same", "relu")
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 16, 1), None, 1, 1, "same", "relu6")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 16, 48), rand(rng, 48), activation="relu")
    return b.build(b.dense("fc", b.flatten("flat", y), rand(rng, 40 * 40 * 48, 2) * 0.05, rand(rng, 2)))


@pytest.mark.parametrize("model, reuse", [("zoo_ds_cnn_kws", False), ("zoo_vgg_cifar10_separable", False),
                                          ("chain", False), ("mobilenet_like", True), ("wide", False)])
def test_clang_everything_streamed(model, reuse, clang):
    """Row kernels and step loops of --schedule stream (and --reuse-input): clean under clang -Weverything
    and the strict gcc flags, still exact."""
    from test_schedule import CHAINS, chain_graph, mobilenet_like

    compiler, flags = clang
    build = {"chain": lambda: chain_graph(*CHAINS[3]), "mobilenet_like": mobilenet_like, "wide": wide_chain}.get(model)
    graph, inputs = quantized((build or ZOO[model])(), np.random.default_rng(0))
    files = codegen.render(graph, PREFIX, schedule="stream", reuse_input=reuse)
    assert "_rows(" in files[f"{PREFIX}.c"]
    if model == "wide":
        assert "static const int32_t model_layer0_rows[40]" in files[f"{PREFIX}.c"]
    files["sepgen_harness.c"] = codegen.render_harness(graph, PREFIX, "host", "stream", reuse)
    toolchain.compile_executable(files, toolchain.HOST_FLAGS)
    exe = toolchain.compile_executable(files, flags, defines=(f"{PREFIX.upper()}_TRACE",), compiler=compiler)
    result = verification.compare(graph, inputs, _run(exe, graph, inputs, "stream", reuse))
    assert result.ok, f"clang build: {result.mismatch}"


def test_bench_harness_is_clean(clang):
    """templates/harness/bench.c.j2 (benchmarks/) under the strict gcc set and clang's every warning."""
    graph, _ = quantized(zoo.ds_cnn_block(), np.random.default_rng(0))
    files = codegen.render(graph, PREFIX)
    files["bench_main.c"] = codegen.environment().get_template("harness/bench.c.j2").render(
        prefix=PREFIX, PREFIX=PREFIX.upper(), version=codegen.__version__)
    toolchain.compile_executable(files, toolchain.HOST_FLAGS)
    toolchain.compile_executable(files, clang[1], compiler=clang[0])


#: Families whose layers have DSP or Helium kernel variants (sepgen.targets: cortex-m4/m7/m33, cortex-m55): rendered
#: for such a core and compiled here for the host, the variants' portable #else branch must be as clean and as exact.
DSP_FAMILIES = ["test_conv2d", "test_depthwise_conv2d", "test_extreme_zero_points_separable_block",
                "zoo_ds_cnn_kws"]


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])  # DSP kernels; Helium (MVE) kernels
@pytest.mark.parametrize("family", DSP_FAMILIES)
def test_dsp_variants_portable_branch_is_clean_and_exact(family, target, clang):
    compiler, flags = clang
    for graph, inputs in _family_models(family):
        files = codegen.render(graph, PREFIX, target)
        files["sepgen_harness.c"] = codegen.render_harness(graph, PREFIX)
        toolchain.compile_executable(files, flags, compiler=compiler)
        exe = toolchain.compile_executable(files, flags, defines=(f"{PREFIX.upper()}_TRACE",), compiler=compiler)
        result = verification.compare(graph, inputs, _run(exe, graph, inputs))
        assert result.ok, f"clang build of the {target} kernels: {result.mismatch}"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("model, reuse", [("zoo_ds_cnn_kws", False), ("conv_ring", False), ("mobilenet_like", True)])
def test_row_kernel_variants_portable_branch_is_clean_and_exact(model, reuse, target, clang):
    """The DSP and Helium row kernels of --schedule stream (their portable #else branch, built here for the host):
    clean under clang -Weverything and still exact."""
    from test_dsp_host import conv_ring_chain
    from test_schedule import mobilenet_like

    compiler, flags = clang
    build = ZOO.get(model, conv_ring_chain if model == "conv_ring" else mobilenet_like)
    graph, inputs = quantized(build(), np.random.default_rng(0))
    files = codegen.render(graph, PREFIX, target, "stream", reuse)
    assert "row_begin" in files[f"{PREFIX}.c"] and "__ARM_FEATURE" in files[f"{PREFIX}.c"]
    files["sepgen_harness.c"] = codegen.render_harness(graph, PREFIX, "host", "stream", reuse)
    exe = toolchain.compile_executable(files, flags, defines=(f"{PREFIX.upper()}_TRACE",), compiler=compiler)
    result = verification.compare(graph, inputs, _run(exe, graph, inputs, "stream", reuse))
    assert result.ok, f"clang build of the {target} row kernels: {result.mismatch}"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55", "host"])
def test_two_models_in_one_translation_unit(target, clang):
    """Two models' C files included into one .c (a unity build) compile and link cleanly: every symbol has the
    model's prefix, and the sepgen_* helpers both files write are guarded (the first definition is kept)."""
    compiler, flags = clang
    graph, _ = quantized(zoo.ds_cnn_block(), np.random.default_rng(0))
    files = {"unity.c": '#include "a.inc"\n#include "b.inc"\n', "sepgen_harness.c": codegen.render_harness(graph, "a")}
    for prefix, schedule in (("a", "layer"), ("b", "stream")):
        for name, text in codegen.render(graph, prefix, target, schedule).items():
            files[f"{prefix}.inc" if name == f"{prefix}.c" else name] = text
    toolchain.compile_executable(files, toolchain.HOST_FLAGS)
    toolchain.compile_executable(files, flags, compiler=compiler)
