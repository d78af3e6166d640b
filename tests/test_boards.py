"""``report --board``: presets, the fits verdict (flash = code + constants, RAM = arena + input + output, with
headroom) and the latency estimate (measured instructions where QEMU runs the core, else MACs x measured
instructions/MAC), always labelled an estimate."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import sepgen
from conftest import require_tool
from sepgen import boards, code_size, codegen, kernel_costs, targets, zoo
from sepgen.board_report import board_report, to_text
from sepgen.budget import budget
from sepgen.frontends.builder import GraphBuilder
from sepgen.quantize import quantize
from util import quantized, rand


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sepgen.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    b = GraphBuilder((12, 12, 3), name="small")
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 8), rand(rng, 8), 1, 1, "same", "relu")
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 8, 1), rand(rng, 8), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 8, 16), rand(rng, 16), activation="relu")
    y = b.dense("fc", b.global_avg_pool2d("gap", y), rand(rng, 16, 4), rand(rng, 4), "softmax")
    q, _ = quantized(b.build(y), rng)
    return q


@pytest.fixture(scope="module")
def kws():
    g = zoo.ds_cnn_kws()
    x = np.random.default_rng(0).normal(size=(16,) + g.tensors[g.input].shape).astype(np.float32)
    return quantize(g, x, progress=False)


def test_presets_are_complete_and_consistent():
    names = [n for b in boards.BOARDS for n in (b.name, *b.aliases)]
    assert len(names) == len(set(names)) and all(n == n.lower() for n in names)
    cores = {b.core for b in boards.BOARDS}
    assert {"cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"} <= cores
    for b in boards.BOARDS:
        assert b.core in targets.TARGETS or b.core in kernel_costs.BORROWED, b
        assert 1 <= b.clock_mhz <= 1000 and b.flash_kib > 0 and 0 < b.largest_ram_region_kib <= b.ram_kib, b
        assert b.source and str(b.clock_mhz) in b.source, b  # the datasheet figure is cited
        assert b.flash_bytes == b.flash_kib * 1024 and b.ram_bytes == b.ram_kib * 1024
    assert boards.get_board("STM32F4") is boards.get_board("nucleo-f446re")
    assert boards.get_board("rp2350").core == "cortex-m33" and boards.get_board("pico").core == "cortex-m0plus"


def test_unknown_board_is_one_line_listing_the_presets(tmp_path):
    np.savez(tmp_path / "m.npz")  # never read: the board is checked first
    proc = run_cli("report", str(tmp_path / "nowhere.npz"), "--board", "stm32f9")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown board 'stm32f9'" in lines[0], proc.stderr
    assert all(b.name in lines[0] for b in boards.BOARDS)


def test_verdict_adds_code_constants_arena_and_buffers(small):
    b = budget(small, prefix="small")
    r = board_report(boards.get_board("nrf52840"), small, b, None, "layer", False, measure=False)
    computed = len(small.computed_layers())
    flash, ram = r["flash"], r["ram"]
    assert flash["code_basis"] == "estimated" and flash["code_bytes"] == computed * code_size.ESTIMATED_CODE_BYTES_PER_LAYER
    assert flash["constants_bytes"] == b.totals.flash_bytes
    assert flash["needed_bytes"] == flash["code_bytes"] + flash["constants_bytes"]
    assert flash["headroom_bytes"] == 1024 * 1024 - flash["needed_bytes"]
    assert flash["headroom_percent"] == round(100 * flash["headroom_bytes"] / (1024 * 1024), 1)
    assert ram["needed_bytes"] == b.totals.ram_bytes + 12 * 12 * 3 + 4 == ram["arena_bytes"] + 432 + 4
    assert r["fits"] is flash["fits"] is ram["fits"] is True
    json.dumps(r)  # plain JSON types
    text = to_text(r)
    assert "nrf52840" in text and ": FITS" in text and "ESTIMATED" in text and "an ESTIMATE" in text

    # a board too small for it: every figure says so
    tiny = dataclasses.replace(boards.get_board("nrf52840"), flash_kib=1, ram_kib=1, largest_ram_region_kib=1)
    r = board_report(tiny, small, b, None, "layer", False, measure=False)
    assert r["fits"] is False and r["flash"]["fits"] is False and r["flash"]["headroom_bytes"] < 0
    assert "DOES NOT FIT" in to_text(r) and "bytes too many" in to_text(r)
    # RAM in total is enough but the arena (one array) is larger than the largest region
    split = dataclasses.replace(boards.get_board("nrf52840"), largest_ram_region_kib=0)
    r = board_report(split, small, b, None, "layer", False, measure=False)
    assert r["ram"]["fits"] is False and r["ram"]["headroom_bytes"] > 0
    assert "exceeds the largest RAM region" in to_text(r)


def test_latency_estimate_is_work_times_measured_cost(kws):
    """Without measuring, instructions = sum of MACs (input elements without MACs) x the table's cost of
    the op; ms = instructions / clock; the portable cost for a core without kernel variants."""
    b = budget(kws, prefix="kws")
    for name, kernels in (("nucleo-f446re", "target"), ("pico", "portable")):
        board = boards.get_board(name)
        lat = board_report(board, kws, b, None, "layer", False, measure=False)["latency"]
        measured_on = kernel_costs.BORROWED.get(board.core, (board.core,))[0]
        table = kernel_costs.MEASURED[measured_on][kernels]
        expected = 0.0
        for _, layer in kws.computed_layers():
            key = "conv2d_1x1" if layer.op == "conv2d" and layer.kernel_size == (1, 1) else layer.op
            work = layer.macs() or int(np.prod(layer.input_shape))
            expected += work * table[key]
        assert lat["instructions"] == round(expected) and lat["instructions_basis"] == "estimated"
        assert lat["estimate"] is True and lat["ms"] == float(f"{expected / (board.clock_mhz * 1000):.3g}")
        assert "estimated from MACs" in lat["how"] and "one instruction per cycle" in lat["how"]


def test_measured_instructions_and_code_on_a_qemu_core(kws, tmp_path):
    """With the tools, a Cortex-M4 board gets the profiled instruction count and the compiled code size; the
    estimate of the same model (layer schedule, DSP kernels) is within 25 % of that measurement (the table
    averages the KWS and VGG layers: VGG's pointwise layers with few input channels cost more per MAC than
    KWS's), and the object's code is within 10 % of the model's code in the linked firmware."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from sepgen.firmware import profile, sizes

    files = codegen.render(kws, "kws", "cortex-m4", "layer")
    b = budget(kws, prefix="kws")
    board = boards.get_board("stm32f4")
    r = board_report(board, kws, b, files, "layer", False, measure=True)
    measured = profile(kws, "cortex-m4", "kws", files).total
    assert r["latency"]["instructions"] == measured and r["latency"]["instructions_basis"] == "measured"
    assert r["latency"]["estimate"] is True  # instructions at one per cycle: a latency estimate all the same
    estimated = board_report(board, kws, b, files, "layer", False, measure=False)["latency"]["instructions"]
    assert abs(estimated - measured) <= 0.25 * measured, (
        f"estimate {estimated:,} vs measured {measured:,}: the kernels changed; re-run benchmarks/kernel_costs.py and "
        "update sepgen/kernel_costs.py")
    # streamed chains run the DSP row kernels too (pooling: portable): the estimate takes their costs
    auto = codegen.render(kws, "kws", "cortex-m4", "auto")
    streamed_measured = profile(kws, "cortex-m4", "kws", auto).total
    streamed_estimated = board_report(board, kws, b, auto, "auto", False, measure=False)["latency"]["instructions"]
    assert abs(streamed_estimated - streamed_measured) <= 0.25 * streamed_measured, (streamed_estimated,
                                                                                     streamed_measured)
    assert r["flash"]["code_basis"] == "measured" and "-mcpu=cortex-m4" in r["flash"]["code_how"]
    elf = sizes(kws, "cortex-m4", "kws", files)
    assert abs(r["flash"]["code_bytes"] - elf.code) <= 0.10 * elf.code, (r["flash"]["code_bytes"], elf.code)
    # the DSP kernels store some constants differently (folded biases): close to the budget's, not equal
    assert abs(r["flash"]["constants_bytes"] - b.totals.flash_bytes) <= 0.10 * b.totals.flash_bytes


def test_cli_board_in_text_and_json(small, tmp_path):
    out = tmp_path / "gen"
    sepgen.generate(small, out, prefix="small")
    proc = run_cli("report", str(out), "--board", "pico2", "--json", "--estimate")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    board = doc["board"]
    assert board["name"] == "pico2" and board["core"] == "cortex-m33" and board["clock_mhz"] == 150
    assert board["ram"]["arena_bytes"] == doc["totals"]["ram_bytes"] and board["fits"] is True
    assert {"model", "layers", "totals", "memory"} <= set(doc)  # the rest of the report is unchanged
    text = run_cli("report", str(out), "--board", "rp2350", "--estimate").stdout
    assert "Board pico2 (RP2350, cortex-m33 at 150 MHz" in text and "an ESTIMATE" in text
    proc = run_cli("report", str(out), "--estimate")
    assert proc.returncode == 2 and "need --board NAME" in proc.stderr


def test_a_float_model_gets_estimates_that_say_why():
    """report MODEL --board without --calibration: nothing can be compiled, so both figures are estimates."""
    rng = np.random.default_rng(4)
    g = GraphBuilder((8, 8, 2))
    graph = g.build(g.conv2d("c", g.input, rand(rng, 3, 3, 2, 4), rand(rng, 4)))
    r = board_report(boards.get_board("stm32h7"), graph, budget(graph), None, "layer", False, measure=True)
    assert r["flash"]["code_basis"] == "estimated" and "float model" in r["flash"]["code_how"]
    assert r["latency"]["instructions_basis"] == "estimated" and "float model" in r["latency"]["how"]
    assert r["latency"]["instructions"] == round(graph.layers[0].macs() * kernel_costs.MEASURED["cortex-m7"]["target"]["conv2d"])


def test_generic_boards_and_overrides(tmp_path, small):
    b = boards.get_board("generic-cortex-m4", 64, 8, 48)
    assert (b.core, b.flash_bytes, b.ram_bytes, b.largest_ram_region_bytes, b.clock_mhz) == (
        "cortex-m4", 65536, 8192, 8192, 48)
    with pytest.raises(sepgen.UserError, match="generic: give its --ram-kib, --clock-mhz"):
        boards.get_board("generic-cortex-m4", 64)
    pico = boards.get_board("pico", ram_kib=100)
    assert pico.ram_kib == pico.largest_ram_region_kib == 100 and pico.flash_kib == 2048
    assert "given on the command line: ram_kib 100" in pico.source
    out = tmp_path / "gen"
    sepgen.generate(small, out, prefix="small")
    doc = json.loads(run_cli("report", str(out), "--json", "--estimate", "--board", "generic-cortex-m7",
                             "--flash-kib", "1", "--ram-kib", "1", "--clock-mhz", "100").stdout)
    assert doc["board"]["fits"] is False and doc["board"]["flash"]["available_bytes"] == 1024
    proc = run_cli("report", str(out), "--ram-kib", "4")
    assert proc.returncode == 2 and "need --board NAME" in proc.stderr


def test_hint_when_the_c_misses_the_cores_kernel_variants(small):
    b = budget(small, prefix="small")
    board = boards.get_board("stm32f4")
    portable = codegen.render(small, "small", "portable", "layer")
    how = board_report(board, small, b, portable, "layer", False, measure=False)["latency"]["how"]
    assert "'generate --target cortex-m4' would use this core's kernel variants" in how
    dsp = codegen.render(small, "small", "cortex-m4", "layer")
    assert "would use" not in board_report(board, small, b, dsp, "layer", False, measure=False)["latency"]["how"]
    streamed = board_report(board, small, b, None, "stream", False, measure=False)["latency"]["how"]
    assert "would use" not in streamed  # streamed chains run the core's row-kernel variants
    pico = board_report(boards.get_board("pico"), small, b, portable, "layer", False, measure=False)["latency"]["how"]
    assert "would use" not in pico  # no variants for Cortex-M0+


def test_board_report_lists_the_kernels_stack_buffers(kws):
    """With an M4 board the report lists the DSP kernels' stack staging per layer (the depthwise layers' staged rows
    and tap words, the convolutions' staged patches), as the generated C declares them; a portable core: none."""
    b = budget(kws, prefix="kws")
    r = board_report(boards.get_board("stm32f4"), kws, b, None, "layer", False, measure=False)["ram"]
    stack = {row["name"]: row["bytes"] for row in r["kernel_stack"]}
    c = codegen.render(kws, "kws", "cortex-m4", "layer")["kws.c"]
    for layer in kws.layers:
        if layer.op == "depthwise_conv2d":
            assert f"({stack[layer.name] - 4 * 3 * 2} bytes)" in c, (layer.name, stack[layer.name])  # + 3x2 tap words
    assert r["kernel_stack_bytes"] == max(stack.values()) and set(stack) == {
        layer.name for layer in kws.layers if layer.op in ("conv2d", "depthwise_conv2d")}
    assert "stack: the kernels' staging buffers take up to" in to_text(
        board_report(boards.get_board("stm32f4"), kws, b, None, "layer", False, measure=False))
    pico = board_report(boards.get_board("pico"), kws, b, None, "layer", False, measure=False)["ram"]
    assert pico["kernel_stack"] == [] and pico["kernel_stack_bytes"] == 0
    portable_c = codegen.render(kws, "kws", "portable", "layer")
    given = board_report(boards.get_board("stm32f4"), kws, b, portable_c, "layer", False, measure=False)["ram"]
    assert given["kernel_stack"] == []  # a DIR of portable kernels: no staging buffers


def test_board_report_stack_of_streamed_layers_is_their_row_kernels(kws):
    """Under --schedule auto every KWS convolution runs inside a streamed chain: the stack figure is its row
    kernel's, as the generated C declares it (the depthwise rows of one output row, its tap words in flash; the
    convolutions' patches of one row's pixels), below the whole-tensor kernels' figure."""
    b = budget(kws, prefix="kws")
    stm32 = boards.get_board("stm32f4")
    layer = board_report(stm32, kws, b, None, "layer", False, measure=False)["ram"]
    auto = board_report(stm32, kws, b, None, "auto", False, measure=False)["ram"]
    stack = {row["name"]: row["bytes"] for row in auto["kernel_stack"]}
    c = codegen.render(kws, "kws", "cortex-m4", "auto")["kws.c"]
    assert "_rows_taps[" in c
    for layer_ in kws.layers:
        if layer_.op == "depthwise_conv2d":
            assert f"({stack[layer_.name]} bytes)" in c, (layer_.name, stack[layer_.name])
        elif layer_.op == "conv2d":
            assert f"({stack[layer_.name]} bytes of stack)" in c, (layer_.name, stack[layer_.name])
    assert 0 < auto["kernel_stack_bytes"] < layer["kernel_stack_bytes"]
