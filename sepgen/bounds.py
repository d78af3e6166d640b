"""Generation-time proofs that the int8 kernels are exact: integers in range, no int32 overflow.

Each op states its own bound (:meth:`sepgen.ir.Layer.accumulator_bound`), e.g. for a convolution
output channel c, with x + input_offset in [-128 - zp, 127 - zp]:

    |acc| <= |bias[c]| + sum |w[c, ...]| * max|x + input_offset|

and requantization first multiplies acc by 2^max(shift, 0); both must stay below 2^31.  The largest
magnitude proved is stated in a comment of the generated C; :class:`AccumulatorOverflow` is raised
when the bound does not hold.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import UserError
from .ir import Graph, Layer, Requant

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
        kernel_size = getattr(layer, "kernel_size", (1, 1))
        if max(kernel_size) > MAX_EXTENT:
            raise UnrepresentableModel(f"layer '{layer.name}': kernel {kernel_size} larger than {MAX_EXTENT}")
        for what, rq in _requants(layer):
            _check_requant(layer, what, rq, layer.output_shape[-1])
        try:
            layer.check_integers(graph)  # the op's own parameters (MEAN's folded shift, softmax, pad, ...)
        except ValueError as exc:
            if isinstance(exc, UserError):
                raise
            raise UnrepresentableModel(f"layer '{layer.name}': {exc}") from None


def prove_no_overflow(graph: Graph) -> dict[str, int]:
    """Bound of every layer by name; raises AccumulatorOverflow naming the first failing layer.

    First checks that every integer parameter is representable (:func:`check_integer_parameters`).
    """
    check_integer_parameters(graph)
    bounds = {}
    for layer in graph.layers:
        bound = layer.accumulator_bound(graph)
        if bound >= LIMIT:
            raise AccumulatorOverflow(f"layer '{layer.name}': int32 accumulator may reach {bound:,} "
                                      f"(>= 2^31); reduce its fan-in or rescale")
        bounds[layer.name] = bound
    return bounds
