"""Measure the instructions per MAC (per input element for ops without MACs) of sepgen's kernels on each
Cortex-M core QEMU runs, and print them as the ``MEASURED`` table of sepgen/kernel_costs.py.

    python benchmarks/kernel_costs.py > /tmp/table.py

For each core (cortex-m3, cortex-m4, cortex-m7, cortex-m33, cortex-m55: the Cortex-M0+'s QEMU board is too small
for these models, so it borrows the M3's portable figures) and kernel set (``portable``: what ``generate --target
host`` writes; ``target``: the core's kernel variants), the DS-CNN KWS and the separable VGG-CIFAR10 of
sepgen.zoo are rendered with ``--schedule layer`` and profiled (``sepgen profile``: executed instructions,
QEMU -icount, deterministic); per op the executed instructions are summed and divided by the MACs (or input
elements) of the same layers.  ``report --board`` uses the table only when it cannot measure the model itself.
"""

from __future__ import annotations

import numpy as np

from sepgen import codegen, firmware, zoo
from sepgen.kernel_costs import HAS_VARIANTS, cost_key, work
from sepgen.quantize import quantize

CORES = ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
PREFIX = "bench"


def quantized(graph):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + graph.tensors[graph.input].shape).astype(np.float32)
    return quantize(graph, x, progress=False)


def main() -> None:
    models = [quantized(zoo.ds_cnn_kws()), quantized(zoo.vgg_cifar10(separable=True))]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for core in CORES:
        # a core without kernel variants renders the portable kernels for either set: measured once
        sets = (("portable", "portable"),) + ((("target", core),) if core in HAS_VARIANTS else ())
        for kernels, render_target in sets:
            sums: dict[str, list[int]] = {}
            for q in models:
                files = codegen.render(q, PREFIX, render_target, "layer")
                for row in firmware.profile(q, core, PREFIX, files=files).layers:
                    layer = q.layers[row.index]
                    entry = sums.setdefault(cost_key(layer), [0, 0])
                    entry[0] += row.instructions
                    entry[1] += work(layer)
            table.setdefault(core, {})[kernels] = {k: round(i / n, 3) for k, (i, n) in sorted(sums.items()) if n}
    print(format_table(table))


def format_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """The table as the Python source of ``MEASURED`` in sepgen/kernel_costs.py (one op per line)."""
    lines = ["MEASURED: dict[str, dict[str, dict[str, float]]] = {"]
    for core, sets in table.items():
        lines.append(f'    "{core}": {{')
        for kernels, costs in sets.items():
            lines.append(f'        "{kernels}": {{')
            lines += [f'            "{key}": {value!r},' for key, value in costs.items()]
            lines.append("        },")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
