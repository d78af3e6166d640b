"""mean: the mean over height and width (Keras GlobalAveragePooling2D, TFLite MEAN over axes 1, 2).

Integer arithmetic as TFLM's QuantizedMeanOrSum: the int32 sum minus input_zp * count, requantized by
input_scale / output_scale with 1/count folded into the multiplier (fixedpoint.fold_count), + output_zp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer, QuantParams, Requant
from ..quantize import requant_for
from ._common import max_input_magnitude, need_hwc


@dataclass(frozen=True, eq=False)
class Mean(Layer):
    """Mean over height and width, output (channels,); ``requant`` (one channel) = input/output scale."""

    op = "mean"
    kernels = {"micropython": "micropython/layers/mean.py.j2"}
    requant: Requant | None = None

    @classmethod
    def infer_shape(cls, input_shapes, **_):
        return (need_hwc(tuple(input_shapes[0]), "mean")[2],)

    @staticmethod
    def requant_for(in_q: QuantParams, out_q: QuantParams) -> Requant:
        """TFLM PrepareMeanOrSum: the rescale input_scale / output_scale (doubles of float32 scales)."""
        return requant_for([np.float64(in_q.scale) / np.float64(out_q.scale)])

    @property
    def count(self) -> int:
        return int(self.input_shape[0] * self.input_shape[1])

    def folded_requant(self) -> tuple[int, int]:
        """(multiplier, shift) with 1/count folded in (fixedpoint.fold_count)."""
        return fp.fold_count(int(self.requant.multiplier[0]), int(self.requant.shift[0]), self.count)

    def quantized(self, input_quants, output_quant):
        import dataclasses

        return dataclasses.replace(self, requant=self.requant_for(input_quants[0], output_quant))

    def run_float(self, xs):
        return xs[0].astype(np.float64).mean(axis=(1, 2)).astype(np.float32)

    def run_int8(self, graph, xs):
        in_zp = graph.tensors[self.inputs[0]].quant.zero_point
        out_zp = graph.tensors[self.output].quant.zero_point
        total = xs[0].astype(np.int64).sum(axis=(1, 2))
        multiplier, shift = self.folded_requant()
        out = fp.multiply_by_quantized_multiplier(total - in_zp * self.count, multiplier, shift) + out_zp
        return fp.clamp(out, -128, 127).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        acc = self.count * max_input_magnitude(graph, self.inputs[0])
        return acc << max(self.folded_requant()[1], 0)

    def check_integers(self, graph) -> None:
        multiplier, shift = self.folded_requant()
        if not -31 <= shift <= 30:
            raise ValueError(f"requantization with 1/{self.count} folded in needs a shift of {shift}; the kernels "
                             "support [-31, 30]")
