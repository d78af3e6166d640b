"""hard_swish: x * relu6(x + 3) / 6 with its own output quantization (TFLite HARD_SWISH).

TFLM's int8 HardSwish works in int16 fixed point on v = x - input_zp (:func:`sepgen.fixedpoint.hard_swish`, one
definition with its C twin ``sepgen_hard_swish``); its Prepare makes two Q15 multipliers with exponents from
float32 scale ratios (:func:`sepgen.quantize.hard_swish_params`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer
from ..quantize import hard_swish_params


@dataclass(frozen=True, eq=False)
class HardSwish(Layer):
    """Elementwise hard swish rescaling to the output's quantization (MobileNetV3's activation)."""

    op = "hard_swish"
    kernels = {"micropython": "micropython/layers/hard_swish.py.j2"}
    output_multiplier: int = 0  # Q15, hi-res input scale / output scale
    output_exponent: int = 0  # <= 0 (TFLM requires it)
    reluish_multiplier: int = 0  # Q15, hi-res input scale / (3 / 2^15)
    reluish_exponent: int = 0

    @classmethod
    def infer_shape(cls, input_shapes, **_):
        return tuple(input_shapes[0])

    def quantized(self, input_quants, output_quant):
        return dataclasses.replace(self, **hard_swish_params(input_quants[0].scale, output_quant.scale))

    def check_integers(self, graph) -> None:
        scales = (f"input scale {graph.tensors[self.inputs[0]].quant.scale:g}, "
                  f"output scale {graph.tensors[self.output].quant.scale:g}")
        if not -15 <= self.output_exponent <= 0:
            raise ValueError(f"hard_swish output rescale exponent {self.output_exponent} ({scales}): TFLite needs "
                             "the output scale above input scale / 128, sepgen also below 2^9 x the input scale")
        if not -15 <= self.reluish_exponent <= 31:
            raise ValueError(f"hard_swish input rescale exponent {self.reluish_exponent} ({scales}); supported "
                             "-15..31")
        for value in (self.output_multiplier, self.reluish_multiplier):
            if not 0 <= value < 1 << 15:
                raise ValueError(f"hard_swish multiplier {value} is not a Q15 value")

    def run_float(self, xs):
        x = xs[0].astype(np.float64)
        return (x * np.clip(x + 3.0, 0.0, 6.0) / 6.0).astype(np.float32)

    def run_int8(self, graph, xs):
        v = xs[0].astype(np.int64) - graph.tensors[self.inputs[0]].quant.zero_point
        out = fp.hard_swish(v, self.output_multiplier, self.output_exponent, self.reluish_multiplier,
                            self.reluish_exponent, graph.tensors[self.output].quant.zero_point)
        return out.astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        """Every intermediate is an int16 value (products of two of them: < 2^30, in int32)."""
        return 1 << 30
