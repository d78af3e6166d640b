"""leaky_relu: x for x >= 0, alpha * x below, with its own output quantization (TFLite LEAKY_RELU).

TFLM's QuantizeLeakyRelu: with v = x - input_zp, output = output_zp + MultiplyByQuantizedMultiplier(v, identity)
for v >= 0 and MultiplyByQuantizedMultiplier(v, alpha) for v < 0, clamped to the int8 range.  TFLM's Prepare
computes both rescales in float32 (input_scale / output_scale and input_scale * alpha / output_scale) and only
then widens them to double for QuantizeMultiplier.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer, QuantParams, Requant
from ..quantize import requant_for


@dataclass(frozen=True, eq=False)
class LeakyRelu(Layer):
    """Elementwise leaky ReLU (slope ``alpha`` >= 0 below zero) rescaling to the output's quantization."""

    op = "leaky_relu"
    kernels = {"micropython": "micropython/layers/leaky_relu.py.j2"}
    alpha: float = 0.2
    identity: Requant | None = None  # input_scale / output_scale (v >= 0)
    negative: Requant | None = None  # input_scale * alpha / output_scale (v < 0)

    @classmethod
    def infer_shape(cls, input_shapes, alpha=0.2, **_):
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"negative slope {alpha} (must be a finite number >= 0)")
        return tuple(input_shapes[0])

    @staticmethod
    def requants_for(in_q: QuantParams, out_q: QuantParams, alpha: float) -> dict[str, Requant]:
        """TFLM CalculateOpDataLeakyRelu: both rescales computed in float32, then QuantizeMultiplier."""
        in_s, out_s, a = np.float32(in_q.scale), np.float32(out_q.scale), np.float32(alpha)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return {"identity": requant_for([np.float64(in_s / out_s)]),
                    "negative": requant_for([np.float64(in_s * a / out_s)])}

    def quantized(self, input_quants, output_quant):
        return dataclasses.replace(self, **self.requants_for(input_quants[0], output_quant, self.alpha))

    def run_float(self, xs):
        x = xs[0].astype(np.float64)
        return np.where(x > 0, x, self.alpha * x).astype(np.float32)

    def run_int8(self, graph, xs):
        v = xs[0].astype(np.int64) - graph.tensors[self.inputs[0]].quant.zero_point
        pos = fp.multiply_by_quantized_multiplier(v, self.identity.multiplier[0], self.identity.shift[0])
        neg = fp.multiply_by_quantized_multiplier(v, self.negative.multiplier[0], self.negative.shift[0])
        out = np.where(v >= 0, pos, neg) + graph.tensors[self.output].quant.zero_point
        return fp.clamp(out, -128, 127).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """x - input_zp is at most 127 - zp above zero and -128 - zp below, each shifted left by its rescale's
        max(shift, 0) before the high multiply."""
        zp = graph.tensors[self.inputs[0]].quant.zero_point
        above, below = max(127 - zp, 0), max(zp + 128, 0)
        return max(above << max(int(self.identity.shift[0]), 0), below << max(int(self.negative.shift[0]), 0))
