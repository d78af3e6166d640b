"""What each MicroPython backend costs on an emulated Cortex-M7 (MicroPython's ports/qemu firmware, MPS2-AN500
in QEMU, -icount), beside sepgen's bare-metal firmware running the same C (the M7's DSP kernels):
flash (.mpy bytes), the heap the import keeps (from a flash file system, and from ROMFS), the bytes one
invoke allocates, and executed instructions per inference (not cycles).

    SEPGEN_MICROPYTHON_SRC=<MicroPython v1.29 source> python benchmarks/micropython_costs.py [--target T]

Models: the MLPerf-Tiny DS-CNN keyword-spotting model and a one-block, 16-channel DS-CNN, random weights
(shapes are what matter).  Every measured run is also checked byte for byte against the simulator.  The plain
.py fallback (no viper) is measured on the small model only: on KWS it needs minutes per inference in QEMU.
"""

from __future__ import annotations

import argparse

import numpy as np

from sepgen import zoo
from sepgen.micropython.costs import format_costs, measure
from sepgen.micropython.qemu import TARGETS
from sepgen.quantize import quantize
from sepgen.verification import random_inputs

MODELS = {"dscnn1": ("DS-CNN, 1 block, 16 channels", lambda: zoo.ds_cnn_kws(blocks=1, channels=16), True),
          "kws": ("DS-CNN KWS (MLPerf Tiny)", zoo.ds_cnn_kws, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=tuple(TARGETS), default="micropython-cortex-m7")
    args = parser.parse_args()
    for prefix, (title, make, plain) in MODELS.items():
        graph = make()
        rng = np.random.default_rng(0)
        q = quantize(graph, rng.normal(size=(64,) + graph.tensors[graph.input].shape).astype(np.float32),
                     progress=False)
        macs = sum(layer.macs() for _, layer in q.computed_layers())
        print(f"\n{title}: {macs:,} MACs")
        print(format_costs(measure(q, prefix, args.target, random_inputs(q, 3)[2:], plain=plain), args.target))


if __name__ == "__main__":
    main()
