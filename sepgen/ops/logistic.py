"""logistic: the sigmoid 1 / (1 + exp(-x)) with the fixed int8 output quantization 1/256, -128 (TFLite LOGISTIC).

TFLM's int8 Logistic: v = x - input_zp; v <= -radius gives -128, v >= radius gives 127; otherwise v is rescaled
into Q4.27 by MultiplyByQuantizedMultiplier(v, input_multiplier, input_left_shift), gemmlowp's logistic gives a
Q0.31 value, which RoundingDivideByPOT(., 23) - 128 clamps to int8.  Prepare (CalculateArithmeticOpDataLogistic):
frexp(double(input_scale) * 2^27) = (q, input_left_shift), input_multiplier = round(q * 2^31), and
radius = floor(15 * 2^27 / 2^input_left_shift) (CalculateInputRadius with 4 integer bits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer
from ..quantize import PROBABILITY_QUANT, logistic_params  # noqa: F401  (re-exported)
from ._common import max_input_magnitude

OUTPUT_QUANT = PROBABILITY_QUANT


@dataclass(frozen=True, eq=False)
class Logistic(Layer):
    """Elementwise sigmoid; the output quantization is TFLite's fixed 1/256, -128."""

    op = "logistic"
    kernels = {"micropython": "micropython/layers/logistic.py.j2"}
    input_multiplier: int = 0
    input_left_shift: int = 0
    input_range_radius: int = 0

    @classmethod
    def infer_shape(cls, input_shapes, **_):
        return tuple(input_shapes[0])

    def output_quant(self, input_quants, calibrated):
        return OUTPUT_QUANT

    def quantized(self, input_quants, output_quant):
        m, shift, radius = logistic_params(input_quants[0].scale)
        return dataclasses.replace(self, input_multiplier=m, input_left_shift=shift, input_range_radius=radius)

    def check_integers(self, graph) -> None:
        if not 0 <= self.input_left_shift <= 30:
            raise ValueError(f"logistic input scale {graph.tensors[self.inputs[0]].quant.scale:g} needs a left "
                             f"shift of {self.input_left_shift} (supported 0..30: input scales from 2^-27 to 8)")
        if not 1 << 30 <= self.input_multiplier < 1 << 31:
            raise ValueError(f"logistic input multiplier {self.input_multiplier} is not a Q31 value in [0.5, 1)")
        if graph.tensors[self.output].quant.zero_point != OUTPUT_QUANT.zero_point:
            raise ValueError("logistic output zero point must be -128")

    def run_float(self, xs):
        return (1.0 / (1.0 + np.exp(-xs[0].astype(np.float64)))).astype(np.float32)

    def run_int8(self, graph, xs):
        v = xs[0].astype(np.int64) - graph.tensors[self.inputs[0]].quant.zero_point
        radius = self.input_range_radius
        inside = (v > -radius) & (v < radius)
        q4 = fp.multiply_by_quantized_multiplier(np.where(inside, v, 0), self.input_multiplier, self.input_left_shift)
        out = fp.clamp(fp.rounding_divide_by_pot(fp.logistic(q4, fp.LOGISTIC_INPUT_INTEGER_BITS),
                                                  31 - fp.LOGISTIC_OUTPUT_BITS) - 128, -128, 127)
        return np.where(v <= -radius, -128, np.where(v >= radius, 127, out)).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """Only |v| < radius is rescaled: |v| << input_left_shift, below 15 * 2^27 by the radius' definition."""
        inside = min(max_input_magnitude(graph, self.inputs[0]), max(self.input_range_radius - 1, 0))
        return inside << max(self.input_left_shift, 0)
