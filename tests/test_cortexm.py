"""The generated C on Cortex-M4F / M7 / M55 under QEMU: bit-exact, deterministic profiles, exact sizes.

Each case cross-compiles (arm-none-eabi-gcc -O2 with the strict warning set of sepgen.toolchain.WARNINGS:
-std=c99 -Wall -Wextra -Wconversion -Wshadow -Wsign-conversion -pedantic -Werror) the model
with our bare-metal harness (firmware/, templates/harness/cortexm.c.j2), runs it in QEMU with
semihosting and compares every layer's output with the simulator, byte for byte.

Op grid: the grids of tests/test_ops_c.py with the same representative subset CI runs on the host
(every 9th depthwise / 12th conv / 4th pooling case plus the first case of every option value:
kernel, stride, padding, depth multiplier, dilation, shape, channels, activation), on every core;
plus dense, softmax, add, mean/flatten, pad, extreme zero points and the MLPerf Tiny DS-CNN
keyword-spotting architecture.  --run-slow runs the whole grids on all three cores.
Missing tools skip on a laptop and fail in CI (conftest.require_tool).
"""

from __future__ import annotations

import itertools
import zlib
from fractions import Fraction

import numpy as np
import pytest
from conftest import require_tool
from util import quantized, rand, single_layer

from sepgen import codegen, firmware, plan, verification
from sepgen.cortexm import profiling
from sepgen.budget import budget
from sepgen.frontends.builder import GraphBuilder
from sepgen.toolchain import ToolchainError

TARGETS = list(firmware.TARGETS)
SLOW = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tools():
    require_tool(firmware.CROSS_COMPILER)
    require_tool(firmware.QEMU)


def assert_target_matches(graph, inputs, target, **kwargs) -> None:
    result = firmware.verify_target(graph, inputs, target, **kwargs)
    assert result.ok, f"{target}: {result.mismatch}"


def _grid(cases, keep_every: int):
    """All cases as params; the same subset as tests/test_ops_c.py runs by default (every ``keep_every``-th
    case plus the first case of every option value), the rest with --run-slow."""
    seen, params = set(), []
    for i, case in enumerate(cases):
        values = set(enumerate(case))
        fast = i % keep_every == 0 or bool(values - seen)
        params.append(pytest.param(*case, marks=() if fast else SLOW, id="-".join(map(str, case))))
        seen |= values
    return params


def _seed(*case) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(case).encode()))


DW_CASES = [c for c in itertools.product(
    [(3, 3), (5, 5), (3, 1), (1, 3), (1, 1)], [1, 2], ["same", "valid"], [1, 2, 3], [1, 2],
    [(7, 9, 3), (5, 5, 1)], ["none", "relu6"],
) if not (c[1] > 1 and c[4] > 1) and not (c[2] == "valid" and (c[0][0] - 1) * c[4] + 1 > c[5][0])]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kernel,stride,padding,dm,dilation,shape,act", _grid(DW_CASES, 9))
def test_depthwise_conv2d(target, kernel, stride, padding, dm, dilation, shape, act):
    rng = _seed(kernel, stride, padding, dm, dilation, shape, act)
    g = single_layer(shape, lambda b, x: b.depthwise_conv2d(
        "dw", x, rand(rng, *kernel, shape[2], dm), rand(rng, shape[2] * dm, scale=0.2), stride, dilation,
        padding, act))
    assert_target_matches(*quantized(g, rng), target)


CONV_CASES = [c for c in itertools.product(
    [(3, 3), (1, 1), (3, 1), (1, 3), (5, 5), (10, 4)], [1, 2], ["same", "valid"], [1, 2],
    [(9, 7, 3), (11, 5, 1)], [1, 4], ["none", "relu", "relu6"],
) if not (c[1] > 1 and c[3] > 1) and not (c[2] == "valid" and ((c[0][0] - 1) * c[3] + 1 > c[4][0]
                                                                 or (c[0][1] - 1) * c[3] + 1 > c[4][1]))]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kernel,stride,padding,dilation,shape,cout,act", _grid(CONV_CASES, 12))
def test_conv2d(target, kernel, stride, padding, dilation, shape, cout, act):
    rng = _seed(kernel, stride, padding, dilation, shape, cout, act)
    g = single_layer(shape, lambda b, x: b.conv2d(
        "conv", x, rand(rng, *kernel, shape[2], cout, scale=0.3), rand(rng, cout, scale=0.2), stride, dilation,
        padding, act))
    assert_target_matches(*quantized(g, rng), target)


POOL_CASES = list(itertools.product(["max", "avg"], [2, 3, (3, 1)], [1, 2], ["same", "valid"],
                                    [(7, 9, 3), (5, 5, 1)]))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind,pool,stride,padding,shape", _grid(POOL_CASES, 4))
def test_pooling(target, kind, pool, stride, padding, shape):
    rng = _seed(kind, pool, stride, padding, shape)
    method = "max_pool2d" if kind == "max" else "avg_pool2d"
    g = single_layer(shape, lambda b, x: getattr(b, method)("pool", x, pool, stride, padding))
    assert_target_matches(*quantized(g, rng), target)


def _ds_block(rng):
    def build(b, x):
        y = b.depthwise_conv2d("dw", x, rand(rng, 3, 3, 4, 1), rand(rng, 4), 1, 1, "same", "relu")
        y = b.conv2d("pw", y, rand(rng, 1, 1, 4, 6), rand(rng, 6), activation="relu6")
        y = b.global_avg_pool2d("gap", y)
        return b.dense("fc", y, rand(rng, 6, 5), rand(rng, 5), activation="softmax")
    return single_layer((7, 5, 4), build)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_extreme_zero_points_separable_block(target, zero_point_kind):
    rng = np.random.default_rng(7)
    assert_target_matches(*quantized(_ds_block(rng), rng, kind=zero_point_kind), target)


def _mixed_ops(rng):
    """Residual add, pad, average/max pooling, flatten, dense without bias, softmax on logits spread wide."""
    def build(b, x):
        y = b.pad("pad", x, ((1, 0), (0, 2)))
        y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 3, 2), rand(rng, 6), padding="valid", activation="relu")
        z = b.conv2d("pw_a", y, rand(rng, 1, 1, 6, 5, scale=0.2), None)
        w = b.conv2d("pw_b", y, rand(rng, 1, 1, 6, 5, scale=3.0), rand(rng, 5))
        y = b.add("add", [z, w], "relu6")
        y = b.max_pool2d("mp", y, 2)
        y = b.dense("fc1", b.flatten("flat", y), rand(rng, 2 * 3 * 5, 17, scale=0.2), rand(rng, 17), "relu")
        return b.dense("fc2", y, rand(rng, 17, 10, scale=4.0), None, "softmax")
    return single_layer((5, 7, 3), build)


def _mean_keepdims(rng):
    def build(b, x):
        y = b.global_avg_pool2d("gap", x, keepdims=True)
        y = b.conv2d("pw", y, rand(rng, 1, 1, 6, 4), rand(rng, 4))
        return b.dense("fc", b.flatten("flat", y), rand(rng, 4, 3), None)
    return single_layer((9, 3, 6), build)


def _mobilenet_v3_ops(rng):
    """Hard swish, squeeze-excite (sigmoid and hard_sigmoid gates multiplied with the map), a constant add,
    concatenation with rescaled inputs, maximum/minimum, leaky ReLU."""
    def build(b, x):
        y = b.conv2d("c", x, rand(rng, 3, 3, 3, 6), rand(rng, 6), padding="same", activation="hard_swish")
        g = b.conv2d("squeeze", b.global_avg_pool2d("gap", y, keepdims=True), rand(rng, 1, 1, 6, 2), rand(rng, 2),
                     activation="relu")
        y = b.multiply("se", [y, b.conv2d("excite", g, rand(rng, 1, 1, 2, 6), rand(rng, 6), activation="sigmoid")])
        y = b.multiply("se_h", [b.conv2d("excite_h", g, rand(rng, 1, 1, 2, 6), rand(rng, 6),
                                         activation="hard_sigmoid"), y])
        y = b.add("bias", [y], constant=rand(rng, 6))
        y = b.concatenate("cat", [y, b.leaky_relu("leaky", y, 0.2)])
        y = b.minimum("lo", [b.maximum("hi", [y, b.max_pool2d("mp", y, 2, 1, "same")])], constant=rand(rng, 12))
        return b.dense("fc", b.global_avg_pool2d("gap2", y), rand(rng, 12, 4), rand(rng, 4), "softmax")
    return single_layer((5, 7, 3), build)


def _one_d_ops(rng):
    """A 1-D separable pair over a sequence (a height-1 map), strided and dilated, then pooling over time."""
    def build(b, x):
        y = b.separable_conv2d("sep", x, rand(rng, 1, 5, 3, 2), rand(rng, 1, 1, 6, 8), rand(rng, 8), (1, 2),
                               activation="relu")
        y = b.depthwise_conv2d("dw", y, rand(rng, 1, 3, 8, 1), rand(rng, 8), dilation=(1, 2), padding="same")
        return b.global_avg_pool2d("gap", b.max_pool2d("mp", y, (1, 2)))
    return single_layer((1, 40, 3), build)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", [_mixed_ops, _mean_keepdims, _mobilenet_v3_ops, _one_d_ops])
def test_other_ops(target, model):
    rng = np.random.default_rng(zlib.crc32(model.__name__.encode()))
    assert_target_matches(*quantized(model(rng), rng, kind="wide"), target)


# ------------------------------------------------------------------------------------------ DS-CNN (KWS)


def ds_cnn_kws(rng, blocks: int = 4, channels: int = 64):
    """The MLPerf Tiny DS-CNN keyword-spotting architecture (49x10 MFCC in, 12 classes), random weights."""
    def build(b, x):
        y = b.conv2d("conv1", x, rand(rng, 10, 4, 1, channels, scale=0.3), rand(rng, channels, scale=0.1), 2,
                     padding="same", activation="relu")
        for i in range(1, blocks + 1):
            y = b.depthwise_conv2d(f"dw{i}", y, rand(rng, 3, 3, channels, 1), rand(rng, channels, scale=0.1),
                                   padding="same", activation="relu")
            y = b.conv2d(f"pw{i}", y, rand(rng, 1, 1, channels, channels, scale=0.15),
                         rand(rng, channels, scale=0.1), activation="relu")
        y = b.avg_pool2d("pool", y, (25, 5))
        return b.dense("fc", b.flatten("flat", y), rand(rng, channels, 12, scale=0.3), rand(rng, 12), "softmax")
    return single_layer((49, 10, 1), build)


def ds_cnn_block(rng):
    """One DS-CNN block: 25x5x64, depthwise 3x3 'same' + pointwise 64->64, per-channel requantization, ReLU."""
    def build(b, x):
        y = b.depthwise_conv2d("dw", x, rand(rng, 3, 3, 64, 1), rand(rng, 64, scale=0.1), padding="same",
                               activation="relu")
        return b.conv2d("pw", y, rand(rng, 1, 1, 64, 64, scale=0.15), rand(rng, 64, scale=0.1), activation="relu")
    return single_layer((25, 5, 64), build)


@pytest.fixture(scope="module")
def kws():
    rng = np.random.default_rng(2024)
    graph, inputs = quantized(ds_cnn_kws(rng), rng)
    return graph, inputs[::4]  # random full-range and calibration samples


@pytest.mark.parametrize("target", TARGETS)
def test_ds_cnn_kws_bit_exact(kws, target):
    graph, inputs = kws
    assert_target_matches(graph, inputs, target, prefix="kws")


@pytest.mark.parametrize("target", TARGETS)
def test_ds_cnn_kws_streamed_bit_exact(kws, target):
    """--schedule auto streams the whole conv/depthwise/pointwise chain into the pool (sepgen.schedule),
    on every emulated core."""
    graph, inputs = kws
    assert_target_matches(graph, inputs, target, prefix="kws", schedule="auto")


@pytest.mark.parametrize("mode", ["stream", "auto"])
def test_mobilenet_like_reusing_its_input_bit_exact_on_cortex_m4(mode):
    """Row rings, int32 pool sums and tensors placed in the dead input buffer (--reuse-input), on the core."""
    from test_schedule import mobilenet_like

    graph, inputs = quantized(mobilenet_like(), np.random.default_rng(7))
    assert_target_matches(graph, inputs[::3], "cortex-m4", prefix="mn", schedule=mode, reuse_input=True)


@pytest.mark.parametrize("case", [6, 7])
def test_streamed_pooling_chain_bit_exact_on_cortex_m4(case):
    """Max and average pooling windows streamed between separable blocks (row rings on both sides)."""
    from test_schedule import CHAINS, chain_graph

    graph, inputs = quantized(chain_graph(*CHAINS[case]), np.random.default_rng(8))
    assert_target_matches(graph, inputs[::3], "cortex-m4", prefix="pool", schedule="stream")


@pytest.mark.parametrize("target", TARGETS)
def test_profile_is_deterministic_and_complete(kws, target):
    graph, inputs = kws
    first = firmware.profile(graph, target, prefix="kws", inputs=inputs)
    second = firmware.profile(graph, target, prefix="kws", inputs=inputs)
    assert first == second
    traced = [layer for _, layer in graph.computed_layers()]
    assert [p.name for p in first.layers] == [layer.name for layer in traced]
    assert [p.index for p in first.layers] == [index for index, _ in graph.computed_layers()]
    assert first.layers[-1].index == len(graph.layers) - 1 and len(first.layers) < len(graph.layers)  # a flatten
    assert all(p.instructions > 0 for p in first.layers)
    assert all(p.macs == layer.macs() for p, layer in zip(first.layers, traced))
    # invoke = the layers + its own prologue/epilogue (a few instructions; rounding is per layer)
    assert 0 <= first.total - sum(p.instructions for p in first.layers) < 64
    # plain C loops: a handful of instructions per MAC, never fewer than one
    pointwise = [p for p in first.layers if p.name.startswith("pw")]
    assert all(1.0 <= p.instructions_per_mac <= 40.0 for p in pointwise)
    text = firmware.format_profile(first)
    assert "instructions (not cycles)" in text and "pw4" in text


def test_profile_counts_instructions_exactly_from_the_clock():
    """A 3.2-tick (25 MHz) or 4.096-tick (32 MHz) instruction under -icount shift=7 is recovered by rounding."""
    m4, m55 = firmware.TARGETS["cortex-m4"], firmware.TARGETS["cortex-m55"]
    assert m4.ticks_per_instruction == Fraction("3.2") and m55.ticks_per_instruction == Fraction("4.096")
    for n in (0, 1, 2, 17, 10**6 + 3):
        for offset in (0.0, 0.99, 2.5):
            ticks = int(offset + n * float(m4.ticks_per_instruction)) - int(offset)
            assert profiling._instructions(ticks, m4) == n


@pytest.mark.parametrize("target", TARGETS)
def test_sizes_equal_the_report(kws, target):
    graph, _ = kws
    sizes = firmware.sizes(graph, target, prefix="kws")
    report = budget(graph)
    assert sizes.weights == {row.name: row.flash_bytes for row in report.layers}
    assert sizes.weights_total == report.totals.flash_bytes
    arena = plan.plan(graph).arena_size
    assert report.totals.ram_bytes == arena
    assert sizes.arena == (arena + 3) // 4 * 4
    assert 0 < sizes.code < sizes.sections[".text"]
    assert sizes.weights_total <= sizes.sections[".rodata"]


# ------------------------------------------------------------------------------------------------ errors


def _small():
    rng = np.random.default_rng(5)
    return quantized(_ds_block(rng), rng)


def test_a_wrong_byte_is_reported_with_its_layer():
    graph, inputs = _small()
    files = codegen.render(graph)
    dw_bias = next(layer for layer in graph.layers if layer.op == "depthwise_conv2d").qbias
    bias_line = codegen.c_int_array(dw_bias)
    changed = codegen.c_int_array(dw_bias + np.array([1 << 12] + [0] * (dw_bias.size - 1), dtype=np.int32))
    assert bias_line in files["model.c"]
    files["model.c"] = files["model.c"].replace(bias_line, changed, 1)
    result = firmware.verify_target(graph, inputs, "cortex-m4", files=files)
    assert not result.ok and result.mismatch.layer == "dw"


@pytest.mark.parametrize("target", TARGETS)
def test_a_fault_fails_with_one_clear_line(target):
    graph, inputs = _small()
    files = codegen.render(graph)
    files["model.c"] = files["model.c"].replace("    return 0;\n}", "    *(volatile int32_t *)0xF0000000u = 1;\n"
                                                "    return 0;\n}")
    with pytest.raises(ToolchainError, match=r"exit status 3, the firmware faulted: .*exception 0x00000003"):
        firmware.verify_target(graph, inputs[:2], target, files=files)


@pytest.mark.parametrize("mode", ["verify", "profile"])
def test_the_harness_checks_trace_numbers(mode):
    """The Cortex-M harness requires exactly the layer numbers of Graph.computed_layers(), in order."""
    graph, inputs = _small()
    files = codegen.render(graph)
    assert "MODEL_TRACE_LAYER(1, " in files["model.c"]
    files["model.c"] = files["model.c"].replace("MODEL_TRACE_LAYER(1, ", "MODEL_TRACE_LAYER(2, ")
    with pytest.raises(ToolchainError, match="exit status 2, invoke failed or a trace record was malformed"):
        if mode == "verify":
            firmware.verify_target(graph, inputs[:2], "cortex-m4", files=files)
        else:
            firmware.profile(graph, "cortex-m4", files=files)


def test_a_hanging_firmware_times_out():
    graph, inputs = _small()
    files = codegen.render(graph)
    files["model.c"] = files["model.c"].replace("    return 0;\n}", "    for (;;) {\n    }\n}")
    with pytest.raises(ToolchainError, match="timed out"):
        firmware.verify_target(graph, inputs[:1], "cortex-m4", files=files, timeout=3)


def test_missing_cross_compiler_is_one_clear_error(monkeypatch):
    graph, inputs = _small()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match="arm-none-eabi-gcc' not found .*gcc-arm-none-eabi"):
        firmware.verify_target(graph, inputs, "cortex-m4")


def test_unknown_target():
    with pytest.raises(ValueError, match="unknown target 'cortex-m0'"):
        firmware.get_target("cortex-m0")


def test_harness_records_match_the_host_layout():
    """Same record layout as the host harness: the host run and the Cortex-M run give identical arrays."""
    graph, inputs = _small()
    host = verification.run_c(graph, inputs)
    target = firmware.run_target(graph, inputs, "cortex-m55")
    assert host.keys() == target.keys()
    for name in host:
        np.testing.assert_array_equal(host[name], target[name])


def test_cli_verify_and_profile_on_cortex_m4(tmp_path):
    """The command line: verify --target cortex-m4 on a generated directory, and profile it."""
    import subprocess
    import sys

    import sepgen

    rng = np.random.default_rng(21)
    b = GraphBuilder((6, 5, 3))
    y = b.depthwise_conv2d("dw", b.input, rand(rng, 3, 3, 3, 1), rand(rng, 3), padding="same", activation="relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 3, 4), rand(rng, 4))
    q, _ = quantized(b.build(y), rng)
    out = sepgen.generate(q, tmp_path / "m", prefix="m")
    cli = [sys.executable, "-m", "sepgen.cli"]
    proc = subprocess.run(cli + ["verify", str(out), "--target", "cortex-m4", "--count", "5"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "(cortex-m4)" in proc.stdout, proc.stderr
    proc = subprocess.run(cli + ["profile", str(out), "--target", "cortex-m4"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "instructions" in proc.stdout and "dw" in proc.stdout and "pw" in proc.stdout
    proc = subprocess.run(cli + ["profile", str(out), "--target", "cortex-m4", "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json

    data = json.loads(proc.stdout)
    assert data["target"] == "cortex-m4" and data["unit"] == "executed instructions"
    assert [row["name"] for row in data["layers"]] == ["dw", "pw"]
    assert data["totals"]["macs"] == sum(row["macs"] for row in data["layers"]) > 0
    assert 0 <= data["totals"]["instructions"] - sum(row["instructions"] for row in data["layers"]) < 64
    assert data["sizes"]["flash_bytes"] == data["sizes"]["code_bytes"] + data["sizes"]["weights_bytes"]


# ------------------------------------------------------------------------------------------ DSP kernels


def test_dsp_variant_is_chosen_for_pointwise_layers_only():
    """cortex-m4/m7 render the pointwise conv2d with the DSP kernel (SMLAD), other convs and host portable;
    host C is what the portable templates give (no DSP code at all)."""
    rng = np.random.default_rng(11)

    def build(b, x):
        y = b.conv2d("c3", x, rand(rng, 3, 3, 8, 8), rand(rng, 8), padding="same")
        return b.conv2d("pw", y, rand(rng, 1, 1, 8, 6), rand(rng, 6))
    graph, _ = quantized(single_layer((5, 4, 8), build), rng)
    env = codegen.environment()
    chosen = {t: [codegen.kernel_variant(env, layer, t, graph)[0] for _, layer in graph.computed_layers()]
              for t in ("host", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33")}
    assert chosen["host"] == chosen["cortex-m3"] == ["portable", "portable"]
    assert chosen["cortex-m4"] == chosen["cortex-m7"] == chosen["cortex-m33"] == ["portable", "cortexm_dsp"]
    host = codegen.render(graph, "m", "host")["m.c"]
    assert "__ARM_FEATURE_DSP" not in host and "__smlad" not in host
    assert "__smlad" in codegen.render(graph, "m", "cortex-m4")["m.c"]


def test_dsp_depthwise_variant_for_depth_multiplier_one():
    """The depthwise DSP kernel serves depth multiplier 1 (incl. dilation); dm > 1 keeps the portable kernel."""
    rng = np.random.default_rng(12)

    def build(b, x):
        y = b.depthwise_conv2d("dw1", x, rand(rng, 3, 3, 8, 1), rand(rng, 8), 1, 2, "same")
        return b.depthwise_conv2d("dw2", y, rand(rng, 3, 3, 8, 2), rand(rng, 16), padding="same")
    graph, _ = quantized(single_layer((6, 7, 8), build), rng)
    env = codegen.environment()
    chosen = [codegen.kernel_variant(env, layer, "cortex-m4", graph)[0] for _, layer in graph.computed_layers()]
    assert chosen == ["cortexm_dsp", "portable"]
    assert "__smlabb" in codegen.render(graph, "m", "cortex-m7")["m.c"]


# Measured with benchmarks/cortexm_profile.py (arm-none-eabi-gcc 12.2, -O2): block 2.24, dw 5.51, pw 1.78 instr/MAC
# on Cortex-M4.  Instruction counts are deterministic; the bounds leave ~3 % for another compiler version.
DS_BLOCK_M4_BOUNDS = {"total": 2.30, "depthwise_conv2d": 5.68, "conv2d": 1.84}
CMSIS_NN_DS_BLOCK_M4 = 2.86  # Arm's CMSIS-NN on the same block, same count (README, benchmarks)


def test_ds_block_dsp_kernels_are_exact_and_stay_fast():
    """The DS-CNN block 25x5x64 with the DSP kernels: bit-exact on M4 and M7, and on M4 no slower than measured
    (a regression of the kernels fails here), i.e. faster than CMSIS-NN."""
    from sepgen import zoo
    from sepgen.quantize import quantize

    graph = zoo.ds_cnn_block()
    rng = np.random.default_rng(0)
    q = quantize(graph, rng.normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32),
                 progress=False)
    assert [codegen.kernel_variant(codegen.environment(), layer, "cortex-m4", q)[0]
            for _, layer in q.computed_layers()] == ["cortexm_dsp", "cortexm_dsp"]
    inputs = rng.integers(-128, 128, size=(4,) + q.tensors[q.input].shape).astype(np.int8)
    for target in ("cortex-m4", "cortex-m7"):
        assert_target_matches(q, inputs, target)
    p = firmware.profile(q, "cortex-m4", prefix="bench")
    per_op = {layer.op: layer.instructions_per_mac for layer in p.layers}
    assert p.instructions_per_mac <= DS_BLOCK_M4_BOUNDS["total"] < CMSIS_NN_DS_BLOCK_M4, p
    for op in ("depthwise_conv2d", "conv2d"):
        assert per_op[op] <= DS_BLOCK_M4_BOUNDS[op], (op, per_op[op])


# Measured with this code (benchmarks/cortexm_profile.py, same counts here): DS-CNN KWS whole model 3.97 / 4.01 /
# 3.92 instr/MAC on M4 / M7 / M55, the DS block 2.32 on M7 and 2.17 on M55.  Deterministic counts; ~2 % margin.
KWS_BOUNDS = {"cortex-m4": 4.05, "cortex-m7": 4.09, "cortex-m55": 4.00}
DS_BLOCK_BOUNDS = {"cortex-m7": 2.37, "cortex-m55": 2.21}


@pytest.mark.parametrize("target", TARGETS)
def test_instruction_counts_stay_at_what_was_reached(target):
    """A kernel or codegen change that makes the whole KWS model or the DS block slower fails CI."""
    from sepgen import zoo
    from sepgen.quantize import quantize

    rng = np.random.default_rng(0)
    graph, _ = quantized(ds_cnn_kws(rng), rng)
    kws_ipm = firmware.profile(graph, target, prefix="kws").instructions_per_mac
    assert kws_ipm <= KWS_BOUNDS[target], (target, kws_ipm)
    if target in DS_BLOCK_BOUNDS:
        block = zoo.ds_cnn_block()
        q = quantize(block, rng.normal(size=(64,) + block.tensors[block.input].shape).astype(np.float32),
                     progress=False)
        block_ipm = firmware.profile(q, target, prefix="bench").instructions_per_mac
        assert block_ipm <= DS_BLOCK_BOUNDS[target], (target, block_ipm)
