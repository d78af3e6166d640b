"""relu: a standalone ReLU or ReLU6 with its own output quantization (TFLite RELU / RELU6).

Where the activation follows a conv, dense or add it is fused into that layer's clamp instead (no op).
TFLM's ReluQuantized: output = output_zp + MultiplyByQuantizedMultiplier(x - input_zp, input_scale /
output_scale), clamped to [max(-128, output_zp), 127] (RELU) or up to output_zp + round(6 / output_scale)
(RELU6) — the same clamp as a fused activation (quantize.activation_range).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer, QuantParams, Requant
from ..quantize import requant_for
from ._common import clamp_range, float_activation, max_input_magnitude


@dataclass(frozen=True, eq=False)
class Relu(Layer):
    """Elementwise ReLU/ReLU6 that rescales from the input's quantization to the output's."""

    op = "relu"
    kernels = {"micropython": "micropython/layers/relu.py.j2"}
    activation: str = "relu"  # "relu" or "relu6"
    requant: Requant | None = None  # input_scale / output_scale

    @classmethod
    def infer_shape(cls, input_shapes, activation="relu", **_):
        if activation not in ("relu", "relu6"):
            raise ValueError(f"activation '{activation}' (supported: relu, relu6)")
        return tuple(input_shapes[0])

    @staticmethod
    def requant_for(in_q: QuantParams, out_q: QuantParams) -> Requant:
        """TFLM CalculateReluOpData: the rescale input_scale / output_scale (doubles of float32 scales)."""
        return requant_for([np.float64(in_q.scale) / np.float64(out_q.scale)])

    def output_quant(self, input_quants, calibrated):
        """ReLU6 keeps its input's quantization: then it is a pure clamp, which is also exactly what TFLM's
        RELU6 kernel computes (it clamps the raw input between its zero point and 6, ignoring the output's)."""
        return input_quants[0] if self.activation == "relu6" else calibrated

    def quantized(self, input_quants, output_quant):
        return dataclasses.replace(self, requant=self.requant_for(input_quants[0], output_quant))

    def run_float(self, xs):
        return float_activation(xs[0].astype(np.float64), self.activation).astype(np.float32)

    def run_int8(self, graph, xs):
        in_zp = graph.tensors[self.inputs[0]].quant.zero_point
        out = fp.multiply_by_quantized_multiplier(xs[0].astype(np.int64) - in_zp, self.requant.multiplier,
                                                  self.requant.shift)
        lo, hi = clamp_range(graph, self)
        return fp.clamp(out + graph.tensors[self.output].quant.zero_point, lo, hi).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """|x - input_zp| <= 255, shifted left by max(shift, 0) before the high multiply."""
        return max_input_magnitude(graph, self.inputs[0]) << max(int(self.requant.shift[0]), 0)
