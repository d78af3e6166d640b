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

import dataclasses
import math

import numpy as np

from .errors import UserError
from .ir import Add, AvgPool2D, Conv2D, DepthwiseConv2D, FullyConnected, Graph, Layer, Mean, Pad, Requant, Softmax

LIMIT = 1 << 31
#: Shifts the requantization kernels support: ``x * (1 << shift)`` for shift > 0 must not shift into the
#: sign bit of an int32 (<= 30), and RoundingDivideByPOT takes exponents 0..31.
MIN_SHIFT, MAX_SHIFT = -31, 30
#: Largest stride, dilation, kernel or pool extent accepted: beyond it a C literal or an index product
#: could leave the int range of a 16-bit-int compiler, and no microcontroller model needs more.
MAX_EXTENT = 1 << 15


class AccumulatorOverflow(UserError):
    """An int32 accumulator of a layer could overflow for some int8 input."""


class UnrepresentableModel(UserError):
    """A quantized model whose integer parameters the kernels cannot execute as the TFLite spec defines."""


def _requants(layer: Layer) -> list[tuple[str, Requant]]:
    found = [(f.name, getattr(layer, f.name)) for f in dataclasses.fields(layer)]
    return [(name, value) for name, value in found if isinstance(value, Requant)]


def _check_requant(layer: Layer, what: str, rq: Requant, channels: int | None) -> None:
    multiplier, shift = np.asarray(rq.multiplier), np.asarray(rq.shift)
    if multiplier.shape != shift.shape or multiplier.ndim != 1 or (channels is not None
                                                                    and len(multiplier) not in (1, channels)):
        raise UnrepresentableModel(f"layer '{layer.name}': {what} has {multiplier.shape} multipliers and "
                                   f"{shift.shape} shifts for {channels} channels")
    for c, (m, sh) in enumerate(zip(multiplier.tolist(), shift.tolist())):
        real = m * 2.0 ** (sh - 31)
        if not 0 <= m < LIMIT:
            raise UnrepresentableModel(f"layer '{layer.name}': {what} multiplier {m} (channel {c}) is not a "
                                       "non-negative Q31 value; scales must be positive")
        if not MIN_SHIFT <= sh <= MAX_SHIFT:
            raise UnrepresentableModel(
                f"layer '{layer.name}': effective scale {real:.3g} (channel {c}, {what}) needs a shift of {sh}; "
                f"the int32 kernels support shifts in [{MIN_SHIFT}, {MAX_SHIFT}], i.e. effective scales below "
                f"2^{MAX_SHIFT} (check the tensor scales: input * weight / output)")


def _check_quant(graph: Graph, tensor: str) -> None:
    spec = graph.tensors[tensor]
    q = spec.quant
    if q is None:
        raise UnrepresentableModel(f"tensor '{tensor}' is not quantized")
    if not (math.isfinite(q.scale) and q.scale > 0):
        raise UnrepresentableModel(f"tensor '{tensor}': scale {q.scale} (must be a positive finite number)")
    if not -128 <= q.zero_point <= 127:
        raise UnrepresentableModel(f"tensor '{tensor}': zero point {q.zero_point} outside int8 [-128, 127]")
    if not spec.shape or min(spec.shape) < 1 or math.prod(spec.shape) >= LIMIT:
        raise UnrepresentableModel(f"tensor '{tensor}': shape {spec.shape} (each dimension >= 1, under 2^31 "
                                   "elements)")


def check_integer_parameters(graph: Graph) -> None:
    """Refuse a quantized graph whose integers the generated C (and TFLM) cannot execute exactly.

    Checks scales and zero points of every tensor, every Requant's Q31 multiplier and shift range
    (including MEAN's folded 1/count), softmax and ADD constants, pad values and spatial extents.
    Raises :class:`UnrepresentableModel` naming the layer or tensor; never emits C whose comment is false.
    """
    for name in graph.tensors:
        _check_quant(graph, name)
    for layer in graph.layers:
        for field_name in ("strides", "dilation", "pool_size"):
            values = getattr(layer, field_name, None)
            if values is not None and not all(1 <= int(v) <= MAX_EXTENT for v in values):
                raise UnrepresentableModel(f"layer '{layer.name}': {field_name} {tuple(values)} outside 1..{MAX_EXTENT}")
        if isinstance(layer, (Conv2D, DepthwiseConv2D)) and max(layer.kernel_size) > MAX_EXTENT:
            raise UnrepresentableModel(f"layer '{layer.name}': kernel {layer.kernel_size} larger than {MAX_EXTENT}")
        channels = layer.output_shape[-1] if isinstance(layer, (Conv2D, DepthwiseConv2D, FullyConnected)) else 1
        for what, rq in _requants(layer):
            _check_requant(layer, what, rq, channels)
        if isinstance(layer, Mean):
            _check_requant(layer, "requant with 1/count folded in",
                           Requant(*(np.array([v], np.int64) for v in layer.folded_requant())), 1)
        if isinstance(layer, Add) and layer.left_shift != 20:
            raise UnrepresentableModel(f"layer '{layer.name}': ADD left_shift {layer.left_shift}; TFLite uses 20")
        if isinstance(layer, Softmax) and not (0 <= layer.input_left_shift <= 31 and layer.diff_min <= 0
                                               and 0 <= layer.input_multiplier < LIMIT):
            raise UnrepresentableModel(f"layer '{layer.name}': softmax parameters (multiplier "
                                       f"{layer.input_multiplier}, left shift {layer.input_left_shift}, diff_min "
                                       f"{layer.diff_min}) out of range")
        if isinstance(layer, Pad) and not -128 <= layer.value <= 127:
            raise UnrepresentableModel(f"layer '{layer.name}': pad value {layer.value} outside int8")


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
        shifts = np.broadcast_to(layer.requant.shift, acc.shape)
        # Python integers: acc << shift can exceed int64 for a file's extreme shift.
        return max(int(a) << max(int(sh), 0) for a, sh in zip(acc.tolist(), shifts.tolist()))
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
    """Bound of every layer by name; raises AccumulatorOverflow naming the first failing layer.

    First checks that every integer parameter is representable (:func:`check_integer_parameters`).
    """
    check_integer_parameters(graph)
    bounds = {}
    for layer in graph.layers:
        bound = accumulator_bound(graph, layer)
        if bound >= LIMIT:
            raise AccumulatorOverflow(f"layer '{layer.name}': int32 accumulator may reach {bound:,} "
                                      f"(>= 2^31); reduce its fan-in or rescale")
        bounds[layer.name] = bound
    return bounds
