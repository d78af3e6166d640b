"""softmax over the last axis of a vector (TFLite SOFTMAX, int8 in, int8 out at scale 1/256, zp -128).

TFLite's reference arithmetic: differences from the row maximum rescaled to Q5.26, gemmlowp's
fixed-point exp, the sum in Q12.19, reciprocal, output rescaled to 8 bits; the constants are
fixedpoint.SOFTMAX_* (and their C twins in sepgen_fixedpoint.h).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer
from ..quantize import PROBABILITY_QUANT, softmax_params  # noqa: F401  (softmax_params re-exported)

OUTPUT_QUANT = PROBABILITY_QUANT


@dataclass(frozen=True, eq=False)
class Softmax(Layer):
    """Softmax over the last axis. int8 output uses scale 1/256, zero point -128 (TFLite)."""

    op = "softmax"
    kernels = {"micropython": "micropython/layers/softmax.py.j2"}
    beta: float = 1.0
    # Filled by quantized(): TFLite's PreprocessSoftmaxScaling results.
    input_multiplier: int = 0
    input_left_shift: int = 0
    diff_min: int = 0

    @classmethod
    def infer_shape(cls, input_shapes, **_):
        if len(input_shapes[0]) != 1:
            raise ValueError(f"on shape {input_shapes[0]}; only over a vector")
        return tuple(input_shapes[0])

    def output_quant(self, input_quants, calibrated):
        return OUTPUT_QUANT

    def quantized(self, input_quants, output_quant):
        m, s, d = softmax_params(self.beta, input_quants[0].scale)
        return dataclasses.replace(self, input_multiplier=m, input_left_shift=s, diff_min=d)

    def run_float(self, xs):
        z = self.beta * xs[0].astype(np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)

    def run_int8(self, graph, xs):
        return fp.softmax_int8(xs[0], self.input_multiplier, self.input_left_shift, self.diff_min)

    def accumulator_bound(self, graph) -> int:
        # only differences >= diff_min are rescaled: |diff| << input_left_shift
        return abs(self.diff_min) << self.input_left_shift

    def check_integers(self, graph) -> None:
        if not (0 <= self.input_left_shift <= 31 and self.diff_min <= 0 and 0 <= self.input_multiplier < 1 << 31):
            raise ValueError(f"softmax parameters (multiplier {self.input_multiplier}, left shift "
                             f"{self.input_left_shift}, diff_min {self.diff_min}) out of range")
