"""maximum, minimum: the elementwise larger / smaller of two operands (TFLite MAXIMUM / MINIMUM).

TFLM compares the raw int8 values (broadcasting like ADD), which means something only when both operands share the
output's quantization, as the converter writes them; the .tflite reader accepts only that case.  sepgen's own
quantizer gives the output the range of the result, so an operand quantized otherwise is first rescaled to it:
output_zp + MultiplyByQuantizedMultiplier(x - zp, scale / output_scale), clamped to int8 (monotonic, so the
comparison is unchanged).  A rescale with multiplier 0 marks an operand that is compared as it is.
Operands and broadcasting: :mod:`sepgen.ops._binary`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import fixedpoint as fp
from ..ir import QuantParams, Requant
from ..quantize import requant_for
from ._binary import BinaryLayer


@dataclass(frozen=True, eq=False)
class _MinMax(BinaryLayer):
    pick: ClassVar = staticmethod(np.maximum)
    c_compare: ClassVar[str] = ">"  # the C comparison that keeps input1's value
    kernels: ClassVar[dict[str, str]] = {"portable": "layers/min_max.c.j2"}
    input1_requant: Requant | None = None  # multiplier 0: compared as it is
    input2_requant: Requant | None = None

    @staticmethod
    def requants_for(q1: QuantParams, q2: QuantParams, out_q: QuantParams) -> dict[str, Requant]:
        """Per operand: none (multiplier 0) if it has the output's quantization, else double(s) / double(s_out)."""
        def one(q: QuantParams) -> Requant:
            if q == out_q:
                return Requant(np.zeros(1, np.int32), np.zeros(1, np.int32))
            return requant_for([np.float64(q.scale) / np.float64(out_q.scale)])

        return {"input1_requant": one(q1), "input2_requant": one(q2)}

    def output_quant(self, input_quants, calibrated):
        """Two inputs with one quantization keep it (TFLite's raw comparison); otherwise the calibrated one."""
        if self.constant is None and input_quants[0] == input_quants[1]:
            return input_quants[0]
        return calibrated

    def quantized(self, input_quants, output_quant):
        constant = self.quantize_constant()
        quants = self.input_quants_with_constant(input_quants, constant)
        return dataclasses.replace(self, **constant, **self.requants_for(quants[0], quants[1], output_quant))

    def check_integers(self, graph) -> None:
        if self.activation != "none":
            raise ValueError(f"{self.op} with a fused activation")

    def run_float(self, xs):
        a, b = self.float_operands(xs)
        return type(self).pick(a, b).astype(np.float32)

    def run_int8(self, graph, xs):
        out_zp = graph.tensors[self.output].quant.zero_point
        values = []
        for v, q, rq in zip(self.int_operands(xs), self.operand_quants(graph), (self.input1_requant,
                                                                               self.input2_requant)):
            if int(rq.multiplier[0]) != 0:
                v = fp.clamp(fp.multiply_by_quantized_multiplier(v - q.zero_point, rq.multiplier[0], rq.shift[0])
                             + out_zp, -128, 127)
            values.append(v)
        return type(self).pick(*values).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """|x - zp| <= 255, shifted left by max(shift, 0) before the high multiply of a rescaled operand."""
        return max([m << max(int(rq.shift[0]), 0) for m, rq in zip(self.max_operand_magnitudes(graph),
                                                                    (self.input1_requant, self.input2_requant))
                    if int(rq.multiplier[0]) != 0] or [0])


@dataclass(frozen=True, eq=False)
class Maximum(_MinMax):
    """Elementwise maximum (TFLite MAXIMUM; Keras Maximum)."""

    op = "maximum"
    kernels: ClassVar[dict[str, str]] = {"portable": "layers/min_max.c.j2",
                                         "micropython": "micropython/layers/maximum.py.j2"}


@dataclass(frozen=True, eq=False)
class Minimum(_MinMax):
    """Elementwise minimum (TFLite MINIMUM; Keras Minimum)."""

    op = "minimum"
    kernels: ClassVar[dict[str, str]] = {"portable": "layers/min_max.c.j2",
                                         "micropython": "micropython/layers/minimum.py.j2"}
    pick: ClassVar = staticmethod(np.minimum)
    c_compare: ClassVar[str] = "<"
