"""Executed instructions per layer on Cortex-M4/M7/M55 (QEMU, -icount): the DS-CNN block (25x5x64,
depthwise 3x3 + pointwise 64->64) and the MLPerf-Tiny DS-CNN keyword-spotting model, each rendered twice
in the same run: with the portable kernels (what `generate --target portable` writes) and with the target's
kernel variants (`generate --target cortex-m4` ...: the DSP kernels on M4/M7, the Helium (MVE) kernels on
M55), then the targets of issue 9 beside the anchors, then the instructions of the row-streaming schedules
beside the layer-by-layer one (issue 11: streaming should cost at most 10 % more).

    python benchmarks/cortexm_profile.py

Instruction counts, not cycles (see firmware/README.md).  Anchors, same kind of count: Arm's CMSIS-NN
kernels take 2.86 instructions/MAC on the block on Cortex-M4 (depthwise 8.33, pointwise 2.09); CMSIS-NN
with Helium on M55 0.63.
"""

from __future__ import annotations

import sys

import numpy as np

from sepgen import codegen, firmware, zoo
from sepgen.quantize import quantize

TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")
PREFIX = "bench"


def quantized(graph):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32)
    return quantize(graph, x, progress=False)


def per_mac(instructions: int, macs: int) -> str:
    return f"{instructions / macs:.2f}" if macs else "-"


def layer_table(title: str, q) -> dict:
    """Print the per-layer table (portable -> target kernels, per target); return the profiles."""
    portable_files = codegen.render(q, PREFIX, "portable")
    runs = {t: (firmware.profile(q, t, PREFIX, files=portable_files), firmware.profile(q, t, PREFIX))
            for t in TARGETS}
    print(f"\n{title}: executed instructions per MAC, portable kernels -> the target's kernels")
    header = f"{'layer':<10} {'op':<17} {'MACs':>10}" + "".join(f" {t:>22}" for t in TARGETS)
    print(header)
    print("-" * len(header))
    first = runs[TARGETS[0]][1]
    for i, layer in enumerate(first.layers):
        cells = ""
        for t in TARGETS:
            before, after = runs[t][0].layers[i], runs[t][1].layers[i]
            cell = (f"{per_mac(before.instructions, before.macs)} -> {per_mac(after.instructions, after.macs)}"
                    if layer.macs else f"{before.instructions:,} -> {after.instructions:,}")
            cells += f" {cell:>22}"
        print(f"{layer.name:<10} {layer.op:<17} {layer.macs:>10,}{cells}")
    cells = "".join(f" {per_mac(runs[t][0].total, first.macs) + ' -> ' + per_mac(runs[t][1].total, first.macs):>22}"
                    for t in TARGETS)
    print(f"{'total':<10} {'':<17} {first.macs:>10,}{cells}")
    return runs


def _op_per_mac(p, op: str) -> float:
    rows = [lp for lp in p.layers if lp.op == op]
    return sum(lp.instructions for lp in rows) / sum(lp.macs for lp in rows)


def _op_per_mac_after_first(p) -> float:
    rows = [lp for lp in p.layers[1:] if lp.op == "conv2d"]
    return sum(lp.instructions for lp in rows) / sum(lp.macs for lp in rows)


def _mobilenet_graph():
    """MobileNetV1-0.25 96x96 (random weights, the TFLite converter's int8 model read back, as
    benchmarks/tflm_compare.py does)."""
    from sepgen.tfconvert import quantize_with_tflite

    model = zoo.mobilenet_v1_025_keras()
    zoo.randomize_keras_weights(model, 1)
    graph, _ = quantize_with_tflite(model, np.random.default_rng(0).normal(size=(32, 96, 96, 3)).astype(np.float32),
                                    "mobilenet")
    return graph


def _mobilenet_m4(graph):
    """MobileNetV1-0.25 on Cortex-M4: (portable profile, DSP profile), layer by layer."""
    portable = codegen.render(graph, PREFIX, "portable", "layer")
    dsp = codegen.render(graph, PREFIX, "cortex-m4", "layer")
    return firmware.profile(graph, "cortex-m4", PREFIX, files=portable), firmware.profile(graph, "cortex-m4", PREFIX,
                                                                                          files=dsp)


#: (model, core) pairs of the streaming table
STREAMED = (("DS-CNN KWS", "cortex-m4"), ("DS-CNN KWS", "cortex-m7"), ("DS-CNN KWS", "cortex-m33"),
            ("DS-CNN KWS", "cortex-m55"), ("MobileNetV1-0.25", "cortex-m4"), ("MobileNetV1-0.25", "cortex-m7"),
            ("MobileNetV1-0.25", "cortex-m33"), ("MobileNetV1-0.25", "cortex-m55"))


def streaming_table(graphs: dict) -> None:
    """Executed instructions of --schedule layer, auto and auto --reuse-input, each with the portable kernels
    (generate --target portable) and with the core's kernels (generate --target <core>: streamed convolutions run
    the DSP/Helium row kernels)."""
    print("\nStreaming (issue 11): executed instructions, --schedule layer vs auto (row streaming) vs auto "
          "--reuse-input; streamed / layer in brackets")
    head = f"{'model':<18} {'core':<11} {'kernels':<9} {'layer':>12} {'auto':>21} {'auto --reuse-input':>21}"
    print(head)
    print("-" * len(head))
    for name, core in STREAMED:
        graph = graphs[name]
        for kernels, target in (("portable", "portable"), ("target", core)):
            counts = [firmware.profile(graph, core, PREFIX, files=codegen.render(graph, PREFIX, target, schedule,
                                                                                 reuse)).total
                      for schedule, reuse in (("layer", False), ("auto", False), ("auto", True))]
            cells = [f"{counts[0]:>12,}"] + [f"{c:>12,} ({c / counts[0]:.3f}x)" for c in counts[1:]]
            print(f"{name:<18} {core:<11} {kernels:<9} {' '.join(cells)}")


def _depthwise_variants_m4() -> dict[str, float]:
    """Instructions per MAC of a 25x5 depthwise 3x3 'same' layer on Cortex-M4 (DSP kernel): depth multiplier 1
    (64 channels), 2 (32), 3 (22) and dilation 2 (64), about the same MACs each."""
    from sepgen.frontends.builder import GraphBuilder

    out = {}
    for name, (channels, dm, dilation) in {"dm 1": (64, 1, 1), "dm 2": (32, 2, 1), "dm 3": (22, 3, 1),
                                           "dilation 2": (64, 1, 2)}.items():
        rng = np.random.default_rng(21)
        b = GraphBuilder((25, 5, channels))
        y = b.depthwise_conv2d("dw", b.input, rng.normal(size=(3, 3, channels, dm)).astype(np.float32),
                               rng.normal(size=channels * dm).astype(np.float32) * 0.2, 1, dilation, "same", "relu")
        out[name] = firmware.profile(quantized(b.build(y)), "cortex-m4", PREFIX).instructions_per_mac
    return out


def main() -> int:
    block = layer_table("DS-CNN block 25x5x64 (dw 3x3 + pw 64->64)", quantized(zoo.ds_cnn_block()))
    kws_graph = quantized(zoo.ds_cnn_kws())
    kws = layer_table("DS-CNN KWS (MLPerf Tiny architecture)", kws_graph)
    kws_code = firmware.sizes(kws_graph, "cortex-m4", PREFIX).code
    extra = {"block-m33": {"cortex-m33": (None, firmware.profile(quantized(zoo.ds_cnn_block()), "cortex-m33",
                                                                    PREFIX))}}
    mobilenet_graph = _mobilenet_graph()
    mobilenet = _mobilenet_m4(mobilenet_graph)
    variants = _depthwise_variants_m4()

    def layer(runs, target, op):
        p = runs[target][1]
        rows = [lp for lp in p.layers if lp.op == op]
        return sum(lp.instructions for lp in rows) / sum(lp.macs for lp in rows)

    def total(runs, target):
        p = runs[target][1]
        return p.total / p.macs

    rows = [
        ("DS-CNN block, Cortex-M4", "CMSIS-NN 2.86", 1.4, total(block, "cortex-m4"),
         "see dw/pw rows"),
        ("  depthwise 3x3, Cortex-M4", "CMSIS-NN 8.33", 1.8, layer(block, "cortex-m4", "depthwise_conv2d"),
         "a row of 5 outputs per channel (45 MACs): ~10 to stage its input row as int16 pairs (4 channels per "
         "LDR pair, PKHBT/PKHTB + SXTB16), ~10 loads of pair and filter words, 30 SMLAD/SMLADX/SMLAxy (2 per output "
         "and filter row), 3 per output to requantize (SMMLA, SSAT with the layer's one shift, STRB); per channel "
         "~200 more (filter words, biases, the two border rows)"),
        ("  pointwise 64->64, Cortex-M4", "CMSIS-NN 2.09", 1.3, layer(block, "cortex-m4", "conv2d"),
         "5 staged pixels x 1 filter row: 18 instructions per 20 MACs (LDR + 2 SXTB16 for 4 weights, per pixel "
         "an LDRD and 2 SMLAD), 4 per output to requantize (SMMLAR, ASR, SSAT, STRB), the staging"),
        ("DS-CNN block, Cortex-M7", "-", 1.4, total(block, "cortex-m7"), "same kernels as M4"),
        ("DS-CNN block, Cortex-M55", "CMSIS-NN Helium 0.63", 0.45, total(block, "cortex-m55"),
         "Helium kernels: see the block table"),
        ("  depthwise 3x3, Cortex-M55", "-", None, layer(block, "cortex-m55", "depthwise_conv2d"),
         "4 channels per vector: VLDRB.S32 x 2, VMUL, VADD per tap (MVE has no integer vector-by-vector "
         "multiply-accumulate; the taps one asm block), requantization 11 instructions per 4 outputs"),
        ("  pointwise 64->64, Cortex-M55", "-", None, layer(block, "cortex-m55", "conv2d"),
         "VMLADAVA.S8, 2 pixels x 4 channels (one asm block), 8 outputs requantized as 2 vectors"),
        ("DS-CNN KWS whole model, Cortex-M55", "today (portable) "
         f"{kws['cortex-m55'][0].total / kws['cortex-m55'][0].macs:.2f}", None, total(kws, "cortex-m55"),
         "every layer but pooling, dense and softmax on Helium kernels (the first conv through a window patch)"),
        ("DS-CNN KWS whole model, Cortex-M4", "today (portable) "
         f"{kws['cortex-m4'][0].total / kws['cortex-m4'][0].macs:.2f}", 1.6, total(kws, "cortex-m4"),
         f"the depthwise layers (see the depthwise row) and the 10x4 stride-2 first conv, "
         f"{kws['cortex-m4'][1].layers[0].instructions_per_mac:.2f} instr/MAC (40 MACs per output to amortize "
         f"its requantization and the staging of its 10 kernel rows)"),
        ("DS-CNN block, Cortex-M33", "-", None, total(extra["block-m33"], "cortex-m33"),
         "the M4's DSP kernels (Armv8-M Mainline with the DSP extension, QEMU mps2-an505)"),
        ("MobileNetV1-0.25 96x96, Cortex-M4", "today (portable) "
         f"{mobilenet[0].total / mobilenet[0].macs:.2f}", 1.3, mobilenet[1].total / mobilenet[1].macs,
         f"depthwise layers {_op_per_mac(mobilenet[1], 'depthwise_conv2d'):.2f} instr/MAC (the stride-2 ones ~2.8-3.4: "
         "each staged input element serves a quarter of the outputs it serves at stride 1; the 6x6 and 3x3 ones pay "
         "~60 per channel for their filter words and biases), the first conv (3x3 stride 2 over 3 channels) "
         f"{mobilenet[1].layers[0].instructions_per_mac:.2f} (27 MACs and 8 output channels per pixel: "
         "the staging of its kernel rows of 9, straight from the input, and the requantization weigh more per "
         "MAC), the other conv2d layers "
         f"{_op_per_mac_after_first(mobilenet[1]):.2f} (pointwise layers with 8-32 input channels spend more per "
         "MAC on requantization and per-channel set-up), dense and pooling portable"),
        *[(f"  depthwise {name}, Cortex-M4", "-", None, value, f"{value / variants['dm 1']:.2f}x dm 1 "
           f"(issue: within 1.2x; {'met' if value <= 1.2 * variants['dm 1'] else 'not met'})")
          for name, value in variants.items() if name != "dm 1"],
    ]
    print("\nIssue 9 targets: executed instructions per MAC (whole layers, requantization included), measured now")
    print(f"{'workload':<36} {'anchor':<26} {'target':>7} {'measured':>9}  status")
    print("-" * 100)
    for name, anchor, goal, measured, why in rows:
        if goal is None:  # no target in the issue: what the kernel does
            print(f"{name:<36} {anchor:<26} {'-':>7} {measured:>9.2f}  {why}")
            continue
        status = "met" if measured <= goal else f"not met: {why}"
        print(f"{name:<36} {anchor:<26} {'<= ' + str(goal):>7} {measured:>9.2f}  {status}")
    print(f"{'KWS code size, Cortex-M4':<36} {'-':<26} {'<= 12 KB':>7} {kws_code / 1024:>7.1f} KB  "
          f"{'met' if kws_code <= 12 * 1024 else 'not met'}")
    streaming_table({"DS-CNN KWS": kws_graph, "MobileNetV1-0.25": mobilenet_graph})
    return 0


if __name__ == "__main__":
    sys.exit(main())
