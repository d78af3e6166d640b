"""mul: elementwise product of two operands, broadcast (squeeze-excite's per-channel gate, a scalar) or a constant
(TFLite MUL).

TFLM's int8 Mul: output_zp + MultiplyByQuantizedMultiplier((x1 - zp1) * (x2 - zp2), s1 * s2 / s_out), clamped to
the fused activation's range; its Prepare forms s1 * s2 / s_out in double from the float32 scales.  TFLM's
broadcasting kernel computes every element the same way.  Operands and broadcasting: :mod:`sepgen.ops._binary`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import QuantParams, Requant
from ..quantize import requant_for
from ._binary import BinaryLayer
from ._common import clamp_range, float_activation


@dataclass(frozen=True, eq=False)
class Mul(BinaryLayer):
    """Elementwise multiplication with TFLite MUL arithmetic."""

    op = "mul"
    kernels = {"micropython": "micropython/layers/mul.py.j2"}
    requant: Requant | None = None  # s1 * s2 / s_out

    @staticmethod
    def requant_for(q1: QuantParams, q2: QuantParams, out_q: QuantParams) -> Requant:
        """TFLM CalculateOpDataMul: double(s1) * double(s2) / double(s_out), QuantizeMultiplier."""
        return requant_for([np.float64(q1.scale) * np.float64(q2.scale) / np.float64(out_q.scale)])

    def quantized(self, input_quants, output_quant):
        constant = self.quantize_constant()
        quants = self.input_quants_with_constant(input_quants, constant)
        return dataclasses.replace(self, **constant, requant=self.requant_for(quants[0], quants[1], output_quant))

    def run_float(self, xs):
        a, b = self.float_operands(xs)
        return float_activation(a * b, self.activation).astype(np.float32)

    def run_int8(self, graph, xs):
        (a, b), (qa, qb) = self.int_operands(xs), self.operand_quants(graph)
        out = fp.multiply_by_quantized_multiplier((a - qa.zero_point) * (b - qb.zero_point), self.requant.multiplier[0],
                                                  self.requant.shift[0])
        lo, hi = clamp_range(graph, self)
        return fp.clamp(out + graph.tensors[self.output].quant.zero_point, lo, hi).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """|(x1 - zp1) * (x2 - zp2)| <= 255 * 255, shifted left by max(shift, 0) before the high multiply."""
        a, b = self.max_operand_magnitudes(graph)
        return (a * b) << max(int(self.requant.shift[0]), 0)
