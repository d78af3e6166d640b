"""Measured instruction costs of sepgen's kernels, for estimating a model's latency without running it.

``MEASURED[core][kernels][key]`` is the number of executed instructions (QEMU ``-icount``, ``sepgen
profile``; not cycles) per unit of work of one op, measured by ``benchmarks/kernel_costs.py`` on the
DS-CNN KWS and the separable VGG-CIFAR10 of :mod:`sepgen.zoo` (``--schedule layer``).  ``kernels`` is
``portable`` (the reference C99 kernels of ``generate --target portable``) or ``target`` (the core's kernel variants:
the DSP kernels on M4/M7/M33, MVE then DSP on M55; only for those cores, :data:`HAS_VARIANTS`).  ``key`` is the op (:func:`cost_key`; a 1x1 stride-1
Conv2D is ``conv2d_1x1``); the unit of work (:func:`work`) is a MAC for ops with MACs, else an input
element.  An op the two models lack costs :data:`FALLBACK` of its core and kernel set.

:func:`estimate` multiplies each computed layer's work by its cost: an *estimate*, which ``report
--board`` labels as such and uses only when it cannot profile the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .ir import Graph, Layer
from .targets import variants

#: Filled in from ``python benchmarks/kernel_costs.py`` (executed instructions per MAC / per input element).
MEASURED: dict[str, dict[str, dict[str, float]]] = {
    "cortex-m3": {
        "portable": {
            "avg_pool2d": 7.168,
            "conv2d": 16.429,
            "conv2d_1x1": 6.736,
            "depthwise_conv2d": 20.333,
            "fully_connected": 6.026,
            "max_pool2d": 4.133,
            "softmax": 260.364,
        },
    },
    "cortex-m4": {
        "portable": {
            "avg_pool2d": 7.169,
            "conv2d": 16.428,
            "conv2d_1x1": 6.738,
            "depthwise_conv2d": 20.142,
            "fully_connected": 6.027,
            "max_pool2d": 4.133,
            "softmax": 260.136,
        },
        "target": {
            "avg_pool2d": 7.168,
            "conv2d": 1.157,
            "conv2d_1x1": 1.321,
            "depthwise_conv2d": 2.149,
            "fully_connected": 6.027,
            "max_pool2d": 4.135,
            "softmax": 260.045,
        },
    },
    "cortex-m7": {
        "portable": {
            "avg_pool2d": 7.161,
            "conv2d": 15.951,
            "conv2d_1x1": 6.871,
            "depthwise_conv2d": 21.047,
            "fully_connected": 7.031,
            "max_pool2d": 4.097,
            "softmax": 333.409,
        },
        "target": {
            "avg_pool2d": 7.161,
            "conv2d": 1.157,
            "conv2d_1x1": 1.352,
            "depthwise_conv2d": 2.147,
            "fully_connected": 7.014,
            "max_pool2d": 4.096,
            "softmax": 333.227,
        },
    },
    "cortex-m33": {
        "portable": {
            "avg_pool2d": 7.168,
            "conv2d": 16.429,
            "conv2d_1x1": 6.737,
            "depthwise_conv2d": 20.333,
            "fully_connected": 6.026,
            "max_pool2d": 4.133,
            "softmax": 260.364,
        },
        "target": {
            "avg_pool2d": 7.169,
            "conv2d": 1.157,
            "conv2d_1x1": 1.321,
            "depthwise_conv2d": 2.149,
            "fully_connected": 6.027,
            "max_pool2d": 4.134,
            "softmax": 260.455,
        },
    },
    "cortex-m55": {
        "portable": {
            "avg_pool2d": 6.568,
            "conv2d": 15.847,
            "conv2d_1x1": 5.761,
            "depthwise_conv2d": 21.018,
            "fully_connected": 5.028,
            "max_pool2d": 3.885,
            "softmax": 286.682,
        },
        "target": {
            "avg_pool2d": 6.568,
            "conv2d": 0.533,
            "conv2d_1x1": 0.252,
            "depthwise_conv2d": 1.77,
            "fully_connected": 5.028,
            "max_pool2d": 3.775,
            "softmax": 286.273,
        },
    },
}

#: The key whose cost stands in for an op the measurement models do not contain (per core and kernel set).
FALLBACK = {"macs": "conv2d", "elements": "avg_pool2d"}

#: Cores without a QEMU measurement borrow one, and the estimate says so.
BORROWED = {
    "cortex-m0plus": ("cortex-m3", ("portable kernels measured on Cortex-M3 (QEMU's 16 KiB Cortex-M0 board cannot "
                                    "hold the measurement models); Armv6-M lacks some Thumb-2 instructions, so "
                                    "expect more")),
    "xtensa-lx7": ("cortex-m4", "portable kernels measured on Cortex-M4; a different instruction set"),
}
#: Cores whose kernel variants exist (``generate --target``); others run the portable kernels.
HAS_VARIANTS = frozenset({"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"})


def cost_key(layer: Layer) -> str:
    """The op's key in :data:`MEASURED` (``conv2d_1x1`` for a pointwise Conv2D)."""
    if layer.op == "conv2d" and getattr(layer, "is_pointwise", False):
        return "conv2d_1x1"
    return layer.op


def work(layer: Layer) -> int:
    """A layer's unit count: MACs per inference, or input elements (of its first input) for an op without MACs."""
    macs = int(layer.macs())
    return macs if macs else int(prod(int(d) for d in layer.input_shape))


@dataclass(frozen=True)
class Estimate:
    """Estimated executed instructions of one inference and how they were estimated."""

    instructions: int
    measured_on: str  # the core whose measurement was used
    kernels: str  # "portable" or "target"
    basis: str  # one sentence for the report


def estimate(graph: Graph, core: str, kernels: str, streamed: frozenset[int] = frozenset()) -> Estimate:
    """Executed instructions of ``graph``'s computed layers on ``core``: work x measured cost per op.

    ``kernels``: ``target`` (the core's variants) or ``portable``; layers in ``streamed`` (indices in
    ``graph.layers``) run row kernels: one of the core's variants where the op has a row form of it
    (:meth:`Layer.row_kernel_templates`), else the portable one, and take that cost.
    """
    measured_on, note = (core, f"measured on {core}") if core in MEASURED else BORROWED.get(
        core, ("cortex-m4", f"no measurement for {core}: portable kernels measured on Cortex-M4"))
    if kernels == "target" and core not in HAS_VARIANTS:
        kernels = "portable"
    table = MEASURED[measured_on]
    core_variants = set(variants(core)[:-1]) if core in HAS_VARIANTS else set()
    total = 0.0
    for index, layer in graph.computed_layers():
        portable_rows = index in streamed and not set(type(layer).row_kernel_templates()) & core_variants
        costs = table["portable" if portable_rows else kernels]
        key = cost_key(layer)
        cost = costs.get(key, costs[FALLBACK["macs" if layer.macs() else "elements"]])
        total += work(layer) * cost
    what = "the core's kernel variants" if kernels == "target" else "the portable kernels"
    basis = (f"MACs (input elements for layers without MACs) x the instructions per MAC of {what} ({note}; benchmarks/"
             f"kernel_costs.py on two reference models)")
    return Estimate(round(total), measured_on, kernels, basis)
