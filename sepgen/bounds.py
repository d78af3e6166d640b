"""Generation-time proofs that no int32 intermediate can overflow.

For a convolution or dense output channel c, with x + input_offset in
[-128 - zp, 127 - zp]:

    |acc| <= |bias[c]| + sum |w[c, ...]| * max|x + input_offset|

and requantization first multiplies acc by 2^max(shift, 0).  Both must stay
below 2^31.  Each function returns the largest magnitude it proved, so the
generated C can state it in a comment; :class:`AccumulatorOverflow` is raised
when the bound does not hold.
"""

from __future__ import annotations

import numpy as np

from .ir import Add, AvgPool2D, Conv2D, DepthwiseConv2D, FullyConnected, Graph, Layer, Mean, Softmax

LIMIT = 1 << 31


class AccumulatorOverflow(ValueError):
    """An int32 accumulator of a layer could overflow for some int8 input."""


def _max_input_magnitude(graph: Graph, tensor: str) -> int:
    zp = graph.tensors[tensor].quant.zero_point
    return max(abs(-128 - zp), abs(127 - zp))


def accumulator_bound(graph: Graph, layer: Layer) -> int:
    """Largest |int32| any accumulator or pre-shifted value of ``layer`` can reach."""
    if isinstance(layer, (Conv2D, DepthwiseConv2D, FullyConnected)):
        w = np.abs(layer.qkernel.astype(np.int64))
        per_channel = w.reshape(w.shape[0], -1).sum(axis=1) if not isinstance(layer, DepthwiseConv2D) \
            else w.reshape(-1, w.shape[-1]).sum(axis=0)
        acc = per_channel * _max_input_magnitude(graph, layer.inputs[0]) + np.abs(layer.qbias.astype(np.int64))
        shifted = acc << np.maximum(layer.requant.shift.astype(np.int64), 0)
        return int(shifted.max())
    if isinstance(layer, Add):
        # (x + offset) * 2^left_shift; each rescaled input is at most half of that
        # (real multiplier <= 1/2), so the sum is bounded by the same figure.
        shifted = max(_max_input_magnitude(graph, t) for t in layer.inputs) << layer.left_shift
        out_left = max(int(layer.output_requant.shift[0]), 0)
        return max(shifted, shifted << out_left)
    if isinstance(layer, AvgPool2D):
        return layer.pool_size[0] * layer.pool_size[1] * 128
    if isinstance(layer, Softmax):
        # only differences >= diff_min are rescaled: |diff| << input_left_shift
        return abs(layer.diff_min) << layer.input_left_shift
    if isinstance(layer, Mean):
        acc = layer.input_shape[0] * layer.input_shape[1] * _max_input_magnitude(graph, layer.inputs[0])
        return acc << max(int(layer.requant.shift[0]), 0)
    return 0


def prove_no_overflow(graph: Graph) -> dict[str, int]:
    """Bound of every layer by name; raises AccumulatorOverflow naming the first failing layer."""
    bounds = {}
    for layer in graph.layers:
        bound = accumulator_bound(graph, layer)
        if bound >= LIMIT:
            raise AccumulatorOverflow(f"layer '{layer.name}': int32 accumulator may reach {bound:,} "
                                      f"(>= 2^31); reduce its fan-in or rescale")
        bounds[layer.name] = bound
    return bounds
