"""add: elementwise addition of two operands, broadcast (a per-channel vector, a scalar) or a constant (TFLite ADD).

TFLite's arithmetic: each operand, offset and shifted left by ``left_shift`` (20), is rescaled to twice
the larger input scale; the sum is requantized to the output scale.  :meth:`Add.requants_for` is the
one place these parameters are made (the quantizer and the .tflite reader both call it).  TFLM's broadcasting
kernel computes every element the same way.  Operands and broadcasting: :mod:`sepgen.ops._binary`.
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

LEFT_SHIFT = 20  # TFLite int8 ADD


@dataclass(frozen=True, eq=False)
class Add(BinaryLayer):
    """Elementwise addition (residual connections; a broadcast or constant operand) with TFLite ADD arithmetic."""

    op = "add"
    kernels = {"micropython": "micropython/layers/add.py.j2"}
    # Filled by quantized(): TFLite's left_shift=20 scheme.
    input1_requant: Requant | None = None
    input2_requant: Requant | None = None
    output_requant: Requant | None = None
    left_shift: int = LEFT_SHIFT

    @staticmethod
    def requants_for(q1: QuantParams, q2: QuantParams, out_q: QuantParams) -> dict[str, Requant]:
        """TFLM add_common.cc: inputs rescaled to twice the larger input scale over 2^left_shift."""
        twice_max_input_scale = 2.0 * max(q1.scale, q2.scale)
        real_out = twice_max_input_scale / ((1 << LEFT_SHIFT) * out_q.scale)
        return dict(input1_requant=requant_for([q1.scale / twice_max_input_scale]),
                    input2_requant=requant_for([q2.scale / twice_max_input_scale]),
                    output_requant=requant_for([real_out]), left_shift=LEFT_SHIFT)

    def quantized(self, input_quants, output_quant):
        constant = self.quantize_constant()
        quants = self.input_quants_with_constant(input_quants, constant)
        return dataclasses.replace(self, **constant, **self.requants_for(quants[0], quants[1], output_quant))

    def run_float(self, xs):
        a, b = self.float_operands(xs)
        return float_activation(a + b, self.activation).astype(np.float32)

    def run_int8(self, graph, xs):
        scaled = []
        operands = self.int_operands(xs)
        for v, q, rq in zip(operands, self.operand_quants(graph), (self.input1_requant, self.input2_requant)):
            shifted = (v - q.zero_point) * (1 << self.left_shift)
            scaled.append(fp.multiply_by_quantized_multiplier(shifted, rq.multiplier, rq.shift))
        out = fp.multiply_by_quantized_multiplier(scaled[0] + scaled[1], self.output_requant.multiplier,
                                                  self.output_requant.shift)
        out = out + graph.tensors[self.output].quant.zero_point
        lo, hi = clamp_range(graph, self)
        return fp.clamp(out, lo, hi).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        # (x + offset) * 2^left_shift; each rescaled input is at most half of that
        # (real multiplier <= 1/2), so the sum is bounded by the same figure.
        shifted = max(self.max_operand_magnitudes(graph)) << self.left_shift
        out_left = max(int(self.output_requant.shift[0]), 0)
        return max(shifted, shifted << out_left)

    def check_integers(self, graph) -> None:
        if self.left_shift != LEFT_SHIFT:
            raise ValueError(f"ADD left_shift {self.left_shift}; TFLite uses {LEFT_SHIFT}")
