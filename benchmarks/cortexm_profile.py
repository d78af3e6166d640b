"""Executed instructions per layer on Cortex-M4/M7/M55 (QEMU, -icount): the DS-CNN keyword-spotting
model and the single DS-CNN block (25x5x64, depthwise 3x3 + pointwise 64->64), with instructions/MAC.

    python benchmarks/cortexm_profile.py

Instruction counts, not cycles (see firmware/README.md).  Reference, same kind of count, measured
here: Arm's CMSIS-NN kernels take 2.86 instructions/MAC on the block on Cortex-M4 (depthwise 8.3,
pointwise 2.1); a plain C loop 7.2; CMSIS-NN with Helium on M55 0.63.
"""

from __future__ import annotations

import sys

import numpy as np

from sepgen import firmware, zoo
from sepgen.quantize import quantize

TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")


def quantized(graph):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32)
    return quantize(graph, x, progress=False)


def main() -> int:
    for title, graph in (("DS-CNN block 25x5x64 (dw 3x3 + pw 64->64)", zoo.ds_cnn_block()),
                         ("DS-CNN KWS (MLPerf Tiny architecture)", zoo.ds_cnn_kws())):
        q = quantized(graph)
        profiles = {t: firmware.profile(q, t, prefix="bench") for t in TARGETS}
        layers = profiles[TARGETS[0]].layers
        print(f"\n{title}: executed instructions per layer (instructions/MAC)")
        header = f"{'layer':<10} {'op':<17} {'MACs':>10}" + "".join(f" {t:>24}" for t in TARGETS)
        print(header)
        print("-" * len(header))
        for i, layer in enumerate(layers):
            cells = ""
            for t in TARGETS:
                lp = profiles[t].layers[i]
                per_mac = f"({lp.instructions / lp.macs:.2f})" if lp.macs else ""
                cells += f" {lp.instructions:>15,} {per_mac:>8}"
            print(f"{layer.name:<10} {layer.op:<17} {layer.macs:>10,}{cells}")
        total_macs = sum(lp.macs for lp in layers)
        cells = "".join(f" {profiles[t].total:>15,} {'(%.2f)' % (profiles[t].total / total_macs):>8}" for t in TARGETS)
        print(f"{'total':<10} {'':<17} {total_macs:>10,}{cells}")
    print("\nreference (CMSIS-NN, block, Cortex-M4): 2.86 instr/MAC (dw 8.3, pw 2.1); plain C 7.2; "
          "CMSIS-NN Helium on M55: 0.63")
    return 0


if __name__ == "__main__":
    sys.exit(main())
