"""The generated C on Cortex-M0+ / M3 / M4F / M7 / M33 / M55 under QEMU: bit-exact, deterministic profiles, exact
sizes.

Each case cross-compiles (arm-none-eabi-gcc -O2 with the strict warning set of sepgen.toolchain.WARNINGS:
-std=c99 -Wall -Wextra -Wconversion -Wshadow -Wsign-conversion -pedantic -Werror) the model
with our bare-metal harness (firmware/, templates/harness/cortexm.c.j2), runs it in QEMU with
semihosting and compares every layer's output with the simulator, byte for byte.

Op grid: the grids of tests/test_ops_c.py with the same representative subset CI runs on the host
(every 9th depthwise / 12th conv / 4th pooling case plus the first case of every option value:
kernel, stride, padding, depth multiplier, dilation, shape, channels, activation), on every core;
plus dense, softmax, add, mean/flatten, pad, extreme zero points and the MLPerf Tiny DS-CNN
keyword-spotting architecture.  --run-slow runs the whole grids on every core.  The Cortex-M0+ runs on QEMU's
microbit (a Cortex-M0: the same ARMv6-M instructions) with 16 KiB of RAM, so the whole KWS model runs there
streamed only.
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


@pytest.fixture(scope="module")
def kws_narrow():
    rng = np.random.default_rng(2025)
    graph, inputs = quantized(ds_cnn_kws(rng, channels=16), rng)
    return graph, inputs[::4]


@pytest.mark.parametrize("target", TARGETS)
def test_ds_cnn_kws_bit_exact(kws, target):
    graph, inputs = kws
    if target == "cortex-m0plus":  # 16 KiB of RAM on QEMU's board: one clear line, then the streamed model runs
        with pytest.raises(firmware.BoardTooSmall, match=r"cortex-m0plus: the model does not fit .*microbit"):
            firmware.verify_target(graph, inputs, target, prefix="kws")
        return
    assert_target_matches(graph, inputs, target, prefix="kws")


@pytest.mark.parametrize("target", TARGETS)
def test_ds_cnn_kws_streamed_bit_exact(kws, target):
    """--schedule auto streams the whole conv/depthwise/pointwise chain into the pool (sepgen.schedule),
    on every emulated core (with the DSP row kernels on M4/M7/M33, the Helium ones on M55)."""
    graph, inputs = kws
    assert_target_matches(graph, inputs, target, prefix="kws", schedule="auto")


@pytest.mark.parametrize("mode", ["stream", "auto"])
def test_mobilenet_like_reusing_its_input_bit_exact_on_cortex_m4(mode):
    """Row rings, int32 pool sums and tensors placed in the dead input buffer (--reuse-input), on the core."""
    from test_schedule import mobilenet_like

    graph, inputs = quantized(mobilenet_like(), np.random.default_rng(7))
    assert_target_matches(graph, inputs[::3], "cortex-m4", prefix="mn", schedule=mode, reuse_input=True)


def test_mobilenet_v1_025_auto_bit_exact_on_cortex_m4():
    """MobileNetV1-0.25 96x96 under --schedule auto: rows placed one by one through offset tables, int32 sums."""
    from sepgen import zoo

    graph, inputs = quantized(zoo.mobilenet_v1_025(), np.random.default_rng(97))
    assert_target_matches(graph, inputs[::10], "cortex-m4", prefix="mn", schedule="auto")


@pytest.mark.parametrize("case", [6, 7])
def test_streamed_pooling_chain_bit_exact_on_cortex_m4(case):
    """Max and average pooling windows streamed between separable blocks (row rings on both sides)."""
    from test_schedule import CHAINS, chain_graph

    graph, inputs = quantized(chain_graph(*CHAINS[case]), np.random.default_rng(8))
    assert_target_matches(graph, inputs[::3], "cortex-m4", prefix="pool", schedule="stream")


def _streamed_cases():
    from test_dsp_host import streamed_cases

    return streamed_cases()


@pytest.mark.parametrize("placement", ["rows", "rings"])
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("name,build", _streamed_cases(), ids=[c[0] for c in _streamed_cases()])
def test_streamed_chains_with_row_kernel_variants_bit_exact(name, build, target, placement, monkeypatch):
    """Streamed chains whose convolutions run the DSP (M4) or Helium (M55) row kernels (strides, 'valid',
    depth multipliers, dilation, pools between, convolutions reading rings or rows placed one by one through
    row offset tables; test_dsp_host.use_placement): bit-exact on the core."""
    from test_dsp_host import row_variants, use_placement

    graph, inputs = quantized(build(), np.random.default_rng(1))
    use_placement(monkeypatch, graph, placement)
    assert {variant for op, variant in row_variants(graph, target) if op == "conv2d"} == {
        "cortexm_dsp" if target == "cortex-m4" else "mve"}
    assert_target_matches(graph, inputs[::3], target, prefix="chain", schedule="stream")


# Streamed (--schedule auto) / layer-by-layer executed instructions with the target's kernel variants, measured
# (arm-none-eabi-gcc 12.2, -O2): DS-CNN block (fixed rings) M4 1.089, M55 1.006; DS-CNN KWS (rows placed one by
# one, read through their tables) M4 1.080, M55 1.025: the bound, streaming at most 10 % more, on both
# cores.  On the M4 it holds because the DSP depthwise row kernel, called once per 5-pixel output row, reads each
# channel's tap words, bias and rounding term from flash (made per call they cost KWS 1.154).
STREAM_OVER_LAYER_BOUND = {"cortex-m4": 1.10, "cortex-m55": 1.10}


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_streaming_keeps_the_variant_kernels_speed(target):
    """The DS-CNN block and the KWS model streamed run the target's row-kernel variants: bit-exact (the block; KWS:
    test_ds_cnn_kws_streamed_bit_exact) and within STREAM_OVER_LAYER_BOUND[target] of the layer schedule's
    instructions."""
    from test_dsp_host import row_variants

    from sepgen import zoo
    from sepgen.quantize import quantize
    from sepgen.schedule import schedule

    rng = np.random.default_rng(0)
    block = _zoo_ds_block(rng)
    kws = quantize(zoo.ds_cnn_kws(), rng.normal(size=(64, 49, 10, 1)).astype(np.float32), progress=False)
    inputs = rng.integers(-128, 128, size=(3,) + block.tensors[block.input].shape).astype(np.int8)
    assert_target_matches(block, inputs, target, schedule="stream")
    variant = "cortexm_dsp" if target == "cortex-m4" else "mve"
    for graph in (block, kws):
        assert schedule(graph, "auto").streamed
        assert {v for op, v in row_variants(graph, target) if op in ("conv2d", "depthwise_conv2d")} == {variant}
        layer = firmware.profile(graph, target, "bench", files=codegen.render(graph, "bench", target, "layer"))
        streamed = firmware.profile(graph, target, "bench", files=codegen.render(graph, "bench", target, "auto"))
        assert streamed.total <= STREAM_OVER_LAYER_BOUND[target] * layer.total, (graph.name, streamed.total,
                                                                                  layer.total)


@pytest.mark.parametrize("target", TARGETS)
def test_profile_is_deterministic_and_complete(request, target):
    # QEMU's 16 KiB Cortex-M0 board runs the 16-channel KWS layer by layer (the 64-channel one only streamed)
    graph, inputs = request.getfixturevalue("kws_narrow" if target == "cortex-m0plus" else "kws")
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
    # a handful of instructions per MAC, never fewer than one (scalar MACs) or 1/16 (Helium: VMLADAVA does 16)
    pointwise = [p for p in first.layers if p.name.startswith("pw")]
    fewest = 1.0 / 16 if target == "cortex-m55" else 1.0
    assert all(fewest <= p.instructions_per_mac <= 40.0 for p in pointwise)
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


def test_streamed_dsp_depthwise_flash_is_the_stated_cost(kws):
    """Streamed on a DSP core, a 3x3 depthwise layer's constants in the linked ELF are the layer schedule's plus
    18 bytes per channel (its tap words and rounding term in flash instead of int8 taps and shifts; README, "RAM:
    streaming"), 15 without the scaled requantization (no rounding terms); the other layers' are unchanged."""
    graph, _ = kws
    env = codegen.environment()
    files = {mode: codegen.render(graph, "kws", "cortex-m4", mode) for mode in ("layer", "auto")}
    sizes = {mode: firmware.sizes(graph, "cortex-m4", prefix="kws", files=f).weights for mode, f in files.items()}
    checked = 0
    for layer in graph.layers:
        extra = sizes["auto"][layer.name] - sizes["layer"][layer.name]
        if layer.op != "depthwise_conv2d":
            assert extra == 0, layer.name
            continue
        assert codegen.row_kernel_variant(env, layer, "cortex-m4", graph)[0] == "cortexm_dsp"
        taps = layer.row_kernel_context(graph, "cortexm_dsp")["row_taps"]
        assert extra == (15 if taps["round"] is None else 18) * layer.out_channels, (layer.name, extra)
        checked += 1
    assert checked == 4


# ------------------------------------------------------------------------------------------------ errors


def _small():
    rng = np.random.default_rng(5)
    return quantized(_ds_block(rng), rng)


def test_a_wrong_byte_is_reported_with_its_layer():
    graph, inputs = _small()
    files = codegen.render(graph, target="portable")  # the bias array as the portable kernel keeps it
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
    # an undefined instruction: a HardFault on every core (a bad address need not fault on QEMU's microbit)
    files["model.c"] = files["model.c"].replace("    return 0;\n}", "    __builtin_trap();\n    return 0;\n}")
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
    out = sepgen.generate(q, tmp_path / "m", prefix="m", schedule="layer")  # a profile row per layer
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


def test_dsp_variant_is_chosen_for_conv2d_layers():
    """cortex-m4/m7/m33 render every conv2d with the DSP kernel (SMLAD over staged patches: pointwise and k x k,
    strided), except one with fewer than 4 MACs per output (nothing to pair up); host and cortex-m3 portable;
    host C is what the portable templates give (no DSP code at all)."""
    rng = np.random.default_rng(11)

    def build(b, x):
        y = b.conv2d("c3", x, rand(rng, 3, 3, 8, 8), rand(rng, 8), padding="same")
        y = b.conv2d("pw", y, rand(rng, 1, 1, 8, 4), None, activation="relu")  # no bias array
        y = b.conv2d("s2", y, rand(rng, 10, 4, 4, 3), rand(rng, 3), 2, padding="same")
        return b.conv2d("tiny", y, rand(rng, 1, 1, 3, 2), rand(rng, 2))  # 3 MACs per output: portable
    graph, inputs = quantized(single_layer((5, 4, 8), build), rng)
    env = codegen.environment()
    chosen = {t: [codegen.kernel_variant(env, layer, t, graph)[0] for _, layer in graph.computed_layers()]
              for t in ("portable", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33")}
    assert chosen["portable"] == chosen["cortex-m3"] == ["portable"] * 4
    assert chosen["cortex-m4"] == chosen["cortex-m7"] == chosen["cortex-m33"] == ["cortexm_dsp"] * 3 + ["portable"]
    host = codegen.render(graph, "m", "host")["m.c"]  # the host kernels: plain C99, no DSP code
    assert "__ARM_FEATURE_DSP" not in host and "smlad" not in host
    dsp = codegen.render(graph, "m", "cortex-m4")["m.c"]
    assert "sepgen_dsp_smlad" in dsp and "m_layer1_conv2d_bias" not in dsp
    assert_target_matches(graph, inputs, "cortex-m4")


def test_dsp_depthwise_variant_for_every_depth_multiplier():
    """The depthwise DSP kernel serves depth multiplier 1, 2 and 3 and dilation (SMLAD on packed tap pairs)."""
    rng = np.random.default_rng(12)

    def build(b, x):
        y = b.depthwise_conv2d("dw1", x, rand(rng, 3, 3, 8, 1), rand(rng, 8), 1, 2, "same")
        y = b.depthwise_conv2d("dw2", y, rand(rng, 3, 3, 8, 2), rand(rng, 16), padding="same")
        return b.depthwise_conv2d("dw3", y, rand(rng, 3, 3, 16, 3), rand(rng, 48), padding="same")
    graph, _ = quantized(single_layer((6, 7, 8), build), rng)
    env = codegen.environment()
    chosen = [codegen.kernel_variant(env, layer, "cortex-m4", graph)[0] for _, layer in graph.computed_layers()]
    assert chosen == ["cortexm_dsp"] * 3
    assert "__smlad" in codegen.render(graph, "m", "cortex-m7")["m.c"]


def _dw_block_variant(rng, channels: int, dm: int, dilation: int):
    """A 25x5 depthwise 3x3 'same' layer with ReLU (the DS-CNN block's), channels * dm output channels."""
    return single_layer((25, 5, channels), lambda b, x: b.depthwise_conv2d(
        "dw", x, rand(rng, 3, 3, channels, dm), rand(rng, channels * dm, scale=0.2), 1, dilation, "same", "relu"))


# Depth multiplier 2 / 3 and dilation 2 on the DSP kernel cost what depth multiplier 1 costs per MAC (issue
# target: within 1.2x; CMSIS-NN runs these shapes on its scalar fallback).
DW_VARIANTS = [(64, 1, 1), (32, 2, 1), (22, 3, 1), (64, 1, 2)]


def test_dsp_depthwise_multipliers_and_dilation_are_exact_and_as_fast_as_dm1():
    rng = np.random.default_rng(21)
    per_mac = {}
    for channels, dm, dilation in DW_VARIANTS:
        graph, inputs = quantized(_dw_block_variant(rng, channels, dm, dilation), rng)
        assert [codegen.kernel_variant(codegen.environment(), layer, "cortex-m4", graph)[0]
                for _, layer in graph.computed_layers()] == ["cortexm_dsp"]
        assert_target_matches(graph, inputs[:4], "cortex-m4")
        per_mac[(dm, dilation)] = firmware.profile(graph, "cortex-m4", prefix="dwv").instructions_per_mac
    for key, value in per_mac.items():
        assert value <= 1.2 * per_mac[(1, 1)], (key, per_mac)


def _zoo_ds_block(rng: np.random.Generator):
    """sepgen.zoo's DS-CNN block (what benchmarks/cortexm_profile.py measures), quantized on 64 normal samples."""
    from sepgen import zoo
    from sepgen.quantize import quantize

    graph = zoo.ds_cnn_block()
    return quantize(graph, rng.normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32),
                    progress=False)


# Measured with benchmarks/cortexm_profile.py (arm-none-eabi-gcc 12.2, -O2): block 1.136, dw 1.788, pw 1.044 instr/MAC
# on Cortex-M4 (this test's block: dw 1.784).  Instruction counts are deterministic; the bounds leave ~2-3 % for
# another compiler version, except the depthwise layer's, which is the target (<= 1.8) now that it is met.
DS_BLOCK_M4_BOUNDS = {"total": 1.16, "depthwise_conv2d": 1.80, "conv2d": 1.07}
CMSIS_NN_DS_BLOCK_M4 = 2.86  # Arm's CMSIS-NN on the same block, same count (README, benchmarks)


def test_ds_block_dsp_kernels_are_exact_and_stay_fast():
    """The DS-CNN block 25x5x64 with the DSP kernels: bit-exact on M4 and M7, and on M4 no slower than measured
    (a regression of the kernels fails here), i.e. faster than CMSIS-NN."""
    rng = np.random.default_rng(0)
    q = _zoo_ds_block(rng)
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


# ------------------------------------------------------------------------------------------ Helium (MVE) kernels


def test_mve_variant_is_chosen_for_cortex_m55():
    """cortex-m55 renders every conv2d (pointwise, or through a patch of its window) and depth-multiplier-1
    depthwise layers with the Helium kernels (VMLADAVA, VQRDMULH), a depth multiplier 2 with the DSP one; host
    and the DSP cores get no Helium code."""
    rng = np.random.default_rng(13)

    def build(b, x):
        y = b.conv2d("c3", x, rand(rng, 3, 3, 3, 8, scale=0.3), rand(rng, 8), 2, padding="same")
        y = b.depthwise_conv2d("dw1", y, rand(rng, 3, 3, 8, 1), rand(rng, 8), padding="same")
        y = b.depthwise_conv2d("dw2", y, rand(rng, 3, 3, 8, 2), rand(rng, 16), padding="same")
        return b.conv2d("pw", y, rand(rng, 1, 1, 16, 6), rand(rng, 6))
    graph, inputs = quantized(single_layer((9, 7, 3), build), rng)
    env = codegen.environment()
    chosen = {t: [codegen.kernel_variant(env, layer, t, graph)[0] for _, layer in graph.computed_layers()]
              for t in ("portable", "cortex-m4", "cortex-m55")}
    assert chosen["cortex-m55"] == ["mve", "mve", "cortexm_dsp", "mve"]
    assert chosen["cortex-m4"] == ["cortexm_dsp"] * 4
    assert chosen["portable"] == ["portable"] * 4
    m55 = codegen.render(graph, "m", "cortex-m55")["m.c"]
    assert "vmladavaq_s8" in m55 or "vmladavq_s8" in m55
    assert "sepgen_mve_srdhm_divide_by_pot" in m55
    for target in ("host", "cortex-m4"):
        c = codegen.render(graph, "m", target)["m.c"]
        assert "__ARM_FEATURE_MVE" not in c and "vmladav" not in c
    assert_target_matches(graph, inputs, "cortex-m55")


def test_mve_conv_window_larger_than_the_patch_limit_stays_portable():
    """A conv2d whose window exceeds MVE_MAX_WINDOW bytes would need a large stack patch: portable on cortex-m55."""
    from sepgen.ops.conv2d import MVE_MAX_WINDOW

    rng = np.random.default_rng(14)
    channels = MVE_MAX_WINDOW // 9 + 1
    graph, _ = quantized(single_layer((3, 3, channels), lambda b, x: b.conv2d(
        "c3", x, rand(rng, 3, 3, channels, 2, scale=0.05), rand(rng, 2), padding="same")), rng)
    layer = graph.layers[-1]
    assert layer.qkernel[0].size > MVE_MAX_WINDOW
    assert codegen.kernel_variant(codegen.environment(), layer, "cortex-m55", graph)[0] == "portable"


def _with_left_shifts(graph, name: str):
    """The graph with layer ``name``'s even channels rescaled to a left shift of 1 (the multiplier shifted right to
    keep about the same real scale): the simulator and the C both use it, so the kernels' left-shift path is
    checked exactly."""
    import dataclasses

    from sepgen.ir import Requant

    layers = list(graph.layers)
    i = next(k for k, layer in enumerate(layers) if layer.name == name)
    rq = layers[i].requant
    even = np.arange(rq.multiplier.size) % 2 == 0
    multiplier = np.where(even, rq.multiplier.astype(np.int64) >> np.maximum(1 - rq.shift, 0),
                          rq.multiplier).astype(np.int32)
    shift = np.where(even, 1, rq.shift).astype(np.int32)
    layers[i] = dataclasses.replace(layers[i], requant=Requant(multiplier, shift))
    return dataclasses.replace(graph, layers=tuple(layers))


MVE_CASES = [  # (kernel, stride, padding, dilation, shape, zero points, left shifts): groups of 4 channels + a rest
    ((3, 3), 1, "same", 1, (6, 5, 8), "normal", False),
    ((3, 3), 1, "same", 1, (6, 5, 10), "wide", True),
    ((3, 3), 2, "same", 1, (7, 6, 12), "positive", False),
    ((5, 5), 1, "same", 1, (7, 7, 6), "negative", True),
    ((3, 3), 1, "same", 2, (7, 6, 8), "wide", False),
    ((3, 1), 1, "valid", 1, (5, 4, 9), "normal", False),
    ((1, 3), 2, "same", 1, (4, 7, 40), "wide", True),
    ((3, 3), 1, "valid", 1, (5, 5, 36), "normal", False),
]


@pytest.mark.parametrize("kernel,stride,padding,dilation,shape,zero_points,left", MVE_CASES,
                         ids=["-".join(map(str, c)) for c in MVE_CASES])
def test_mve_kernels_bit_exact_on_cortex_m55(kernel, stride, padding, dilation, shape, zero_points, left):
    """The Helium depthwise (4-channel groups, asm taps or intrinsics, border column groups, zero-point rows) and
    conv2d (window patches; pointwise in place) kernels on channel counts the op grid does not reach, with left
    shifts and extreme zero points: bit-exact on Cortex-M55."""
    rng = _seed(kernel, stride, padding, dilation, shape, zero_points, left)
    channels = shape[2]

    def build(b, x):
        y = b.depthwise_conv2d("dw", x, rand(rng, *kernel, channels, 1), rand(rng, channels, scale=0.2), stride,
                               dilation, padding, "relu")
        y = b.conv2d("conv", y, rand(rng, *kernel, channels, 6, scale=0.2), rand(rng, 6), 1, dilation, padding)
        return b.conv2d("pw", y, rand(rng, 1, 1, 6, 7, scale=0.3), rand(rng, 7), activation="relu6")
    graph, inputs = quantized(single_layer(shape, build), rng, kind=zero_points)
    if left:
        for name in ("dw", "conv", "pw"):
            graph = _with_left_shifts(graph, name)
        assert all(max(layer.requant.shift) == 1 for _, layer in graph.computed_layers())
    assert [codegen.kernel_variant(codegen.environment(), layer, "cortex-m55", graph)[0]
            for _, layer in graph.computed_layers()] == ["mve"] * 3
    assert_target_matches(graph, inputs, "cortex-m55")


# Measured with benchmarks/cortexm_profile.py (arm-none-eabi-gcc 12.2, -O2): the block 0.380, dw 1.553, pw 0.215
# instr/MAC on Cortex-M55 with the Helium kernels.  Deterministic counts; the bounds leave ~3 %.
DS_BLOCK_M55_BOUNDS = {"total": 0.39, "depthwise_conv2d": 1.60, "conv2d": 0.222}
CMSIS_NN_DS_BLOCK_M55 = 0.63  # Arm's CMSIS-NN with Helium on the same block (README, benchmarks)
DS_BLOCK_M55_TARGET = 0.45  # issue 9


def test_ds_block_mve_kernels_are_exact_and_stay_fast():
    """The DS-CNN block 25x5x64 with the Helium kernels: bit-exact on Cortex-M55 and no slower than measured (below
    the issue's 0.45 instr/MAC and CMSIS-NN's 0.63)."""
    rng = np.random.default_rng(0)
    q = _zoo_ds_block(rng)
    assert [codegen.kernel_variant(codegen.environment(), layer, "cortex-m55", q)[0]
            for _, layer in q.computed_layers()] == ["mve", "mve"]
    inputs = rng.integers(-128, 128, size=(4,) + q.tensors[q.input].shape).astype(np.int8)
    assert_target_matches(q, inputs, "cortex-m55")
    p = firmware.profile(q, "cortex-m55", prefix="bench")
    per_op = {layer.op: layer.instructions_per_mac for layer in p.layers}
    assert p.instructions_per_mac <= DS_BLOCK_M55_BOUNDS["total"] < DS_BLOCK_M55_TARGET < CMSIS_NN_DS_BLOCK_M55, p
    for op in ("depthwise_conv2d", "conv2d"):
        assert per_op[op] <= DS_BLOCK_M55_BOUNDS[op], (op, per_op[op])


# Measured with this code (benchmarks/cortexm_profile.py, same counts here): DS-CNN KWS whole model 1.167 / 1.166 / 1.166
# instr/MAC on M4 / M7 / M33 (DSP kernels) and 0.417 on M55 (Helium kernels), the DS block 1.138 on M7 and 0.380 on
# M55; portable kernels on M3 9.49 and (streamed, see KWS_SCHEDULE: portable row kernels, rows placed one by one
# through offset tables, which spare the M0+ its `y % 3` ring divisions) M0+ 16.61 (17.50 with fixed rings).
# Deterministic counts; ~2-3 % margin.
KWS_BOUNDS = {"cortex-m0plus": 17.05, "cortex-m3": 9.68, "cortex-m4": 1.19, "cortex-m7": 1.19, "cortex-m33": 1.19,
              "cortex-m55": 0.43}
KWS_SCHEDULE = {"cortex-m0plus": "stream"}  # the layer-by-layer arena does not fit QEMU's 16 KiB M0 board
DS_BLOCK_BOUNDS = {"cortex-m7": 1.16, "cortex-m55": 0.39}


@pytest.mark.parametrize("target", TARGETS)
def test_instruction_counts_stay_at_what_was_reached(target):
    """A kernel or codegen change that makes the whole KWS model or the DS block slower fails CI."""
    rng = np.random.default_rng(0)
    graph, _ = quantized(ds_cnn_kws(rng), rng)
    files = codegen.render(graph, "kws", target, KWS_SCHEDULE.get(target, "layer"))
    kws_ipm = firmware.profile(graph, target, prefix="kws", files=files).instructions_per_mac
    assert kws_ipm <= KWS_BOUNDS[target], (target, kws_ipm)
    if target in DS_BLOCK_BOUNDS:
        q = _zoo_ds_block(rng)
        block_ipm = firmware.profile(q, target, prefix="bench").instructions_per_mac
        assert block_ipm <= DS_BLOCK_BOUNDS[target], (target, block_ipm)


# MobileNetV1-0.25 96x96 (sepgen's quantization, seed 0) with the DSP kernels, layer by layer, on Cortex-M4: 1.277
# instr/MAC measured (the TFLite-converted model of benchmarks/cortexm_profile.py 1.28); the bound is issue 9's
# target.  About 10 s (build + QEMU), so CI runs it.
MOBILENET_M4_BOUND = 1.30


def test_mobilenet_v1_025_stays_within_the_target_on_cortex_m4():
    """A kernel or codegen change that takes MobileNetV1-0.25 on M4 above the issue's 1.3 instr/MAC fails CI."""
    from sepgen import zoo

    graph, _ = quantized(zoo.mobilenet_v1_025(), np.random.default_rng(0))
    files = codegen.render(graph, "mn", "cortex-m4", "layer")
    ipm = firmware.profile(graph, "cortex-m4", prefix="mn", files=files).instructions_per_mac
    assert ipm <= MOBILENET_M4_BOUND, ipm
