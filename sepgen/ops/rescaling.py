"""rescaling: Keras ``Rescaling`` (y = scale * x + offset, scalars, scale > 0) on the model input, folded into the
input quantization; no code is generated.

The model then takes the raw (not rescaled) input: its int8 bytes are read unchanged by the next layer, which sees
them with the rescaled quantization S = scale * S_x, Z = Z_x - offset / S (:func:`sepgen.quantize.rescaled_quant`).
The quantizer chooses the raw quantization (S_x, Z_x) so that offset / S is a whole number
(:func:`sepgen.quantize.rescaling_input_quant`, through :meth:`model_input_quant`); then the fold is exact:
quantizing x with (S_x, Z_x) gives the very bytes that quantizing y with (S, Z) gives.  Images 0..255 with
Rescaling(1/255) become an input of scale 1, zero point -128 (q = pixel - 128).

The frontends fold only a Rescaling that reads the model input with a scalar scale > 0 and a scalar offset; any
other (per-channel, negative scale, deeper in the model) stays a multiply and an add of constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..ir import Layer


@dataclass(frozen=True, eq=False)
class Rescaling(Layer):
    """Keras Rescaling (scalar `scale` > 0, scalar `offset`) of the model input, folded into the input quantization:
    the model takes the raw input, no code."""

    op = "rescaling"
    aliases_input = True
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def infer_shape(cls, input_shapes, scale=1.0, offset=0.0, **_):
        if not (np.isfinite(scale) and np.isfinite(offset) and scale > 0):
            raise ValueError(f"scale {scale}, offset {offset}: a folded rescaling needs a finite scale > 0")
        return tuple(input_shapes[0])

    def model_input_quant(self, rmin, rmax):
        from ..quantize import rescaling_input_quant

        return rescaling_input_quant(rmin, rmax, self.scale, self.offset)

    def output_quant(self, input_quants, calibrated):
        from ..quantize import rescaled_quant

        return rescaled_quant(input_quants[0], self.scale, self.offset)

    def check_integers(self, graph) -> None:
        from ..quantize import rescaled_quant

        raw, rescaled = graph.tensors[self.inputs[0]].quant, graph.tensors[self.output].quant
        try:
            expected = rescaled_quant(raw, self.scale, self.offset)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        if rescaled != expected:
            raise ValueError(f"rescaling reads the input's bytes unchanged: its output quantization must be "
                             f"scale {expected.scale:g}, zero point {expected.zero_point}")

    def run_float(self, xs):
        return (xs[0].astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32)

    def run_int8(self, graph, xs):
        return np.asarray(xs[0], np.int8)
