"""concatenation: tensors joined along one axis (TFLite CONCATENATION; Keras Concatenate).

Each input is copied, or rescaled to the output's quantization when its own differs: out = output_zp +
MultiplyByQuantizedMultiplier(x - input_zp, input_scale / output_scale), clamped to int8 (sepgen's quantizer gives
the output the union of its inputs' ranges).  TFLM's int8 kernel only copies bytes, and the TFLite converter gives
every input the output's quantization, so the .tflite reader accepts only that case (a pure copy, as TFLM).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer, QuantParams
from ..quantize import quantize_multiplier


@dataclass(frozen=True, eq=False)
class Concatenation(Layer):
    """Inputs joined along ``axis`` of the batch-less shape (-1 = channels)."""

    op = "concatenation"
    kernels = {"micropython": "micropython/layers/concatenation.py.j2"}
    axis: int = -1
    # Filled by quantized(): per input, the rescale input_scale / output_scale (TFLite multiplier, shift);
    # multiplier 0 marks an input with the output's quantization, copied unchanged.
    multipliers: np.ndarray = field(default=None)
    shifts: np.ndarray = field(default=None)

    @classmethod
    def infer_shape(cls, input_shapes, axis=-1, **_):
        shapes = [tuple(int(d) for d in s) for s in input_shapes]
        rank = len(shapes[0])
        if len(shapes) < 2:
            raise ValueError(f"{len(shapes)} input; at least 2 are needed")
        if not -rank <= int(axis) < rank:
            raise ValueError(f"axis {axis} of a rank-{rank} tensor")
        a = int(axis) % rank
        if any(len(s) != rank or s[:a] + s[a + 1:] != shapes[0][:a] + shapes[0][a + 1:] for s in shapes):
            raise ValueError(f"inputs of shapes {shapes} differ outside axis {axis}")
        return shapes[0][:a] + (sum(s[a] for s in shapes),) + shapes[0][a + 1:]

    @property
    def positive_axis(self) -> int:
        return self.axis % len(self.output_shape)

    @staticmethod
    def rescales_for(input_quants: list[QuantParams], output_quant: QuantParams) -> dict[str, np.ndarray]:
        """Per input: (0, 0) if its quantization is the output's (a copy), else QuantizeMultiplier of
        double(input_scale) / double(output_scale)."""
        out_scale = np.float64(output_quant.scale)
        pairs = [(0, 0) if q == output_quant else quantize_multiplier(np.float64(q.scale) / out_scale)
                 for q in input_quants]
        return {"multipliers": np.array([m for m, _ in pairs], np.int32),
                "shifts": np.array([s for _, s in pairs], np.int32)}

    def quantized(self, input_quants, output_quant):
        return dataclasses.replace(self, **self.rescales_for(input_quants, output_quant))

    def check_integers(self, graph) -> None:
        if len(self.multipliers) != len(self.inputs) or len(self.shifts) != len(self.inputs):
            raise ValueError(f"{len(self.multipliers)} rescales for {len(self.inputs)} inputs")
        for m, s in zip(self.multipliers.tolist(), self.shifts.tolist()):
            if not (0 <= m < 1 << 31 and -31 <= s <= 30):
                raise ValueError(f"input rescale multiplier {m}, shift {s} (need a Q31 value and a shift in -31..30)")

    def chunks(self, graph) -> list[int]:
        """Elements each input contributes per outer index (its extent along the axis times the inner size)."""
        inner = int(np.prod(self.output_shape[self.positive_axis + 1:]))
        return [graph.tensors[t].shape[self.positive_axis] * inner for t in self.inputs]

    def run_float(self, xs):
        return np.concatenate([x.astype(np.float32) for x in xs], axis=self.positive_axis + 1)

    def run_int8(self, graph, xs):
        out_zp = graph.tensors[self.output].quant.zero_point
        parts = []
        for x, t, m, s in zip(xs, self.inputs, self.multipliers.tolist(), self.shifts.tolist()):
            if m == 0:
                parts.append(x.astype(np.int8))
                continue
            v = fp.multiply_by_quantized_multiplier(x.astype(np.int64) - graph.tensors[t].quant.zero_point, m, s)
            parts.append(fp.clamp(v + out_zp, -128, 127).astype(np.int8))
        return np.concatenate(parts, axis=self.positive_axis + 1)

    def accumulator_bound(self, graph) -> int:
        """|x - input_zp| <= 255, shifted left by max(shift, 0) before the high multiply."""
        return max([255 << max(int(s), 0) for m, s in zip(self.multipliers.tolist(), self.shifts.tolist()) if m]
                   or [0])

    def kernel_context(self, graph, variant):
        return {"chunks": self.chunks(graph), "outer": int(np.prod(self.output_shape[:self.positive_axis])),
                "in_zero_points": [graph.tensors[t].quant.zero_point for t in self.inputs]}
