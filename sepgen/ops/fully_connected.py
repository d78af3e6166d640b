"""fully_connected: a Dense layer over a vector (TFLite FULLY_CONNECTED).

Float kernel (in, out) (Keras); int8 kernel (out, in) (TFLite), per-channel or (from a .tflite) per-tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import WeightedLayer, float_activation, input_offset, requantize_clamp


@dataclass(frozen=True, eq=False)
class FullyConnected(WeightedLayer):
    """Dense layer; kernel (in, out)."""

    op = "fully_connected"
    kernels = {"micropython": "micropython/layers/fully_connected.py.j2"}

    @classmethod
    def infer_shape(cls, input_shapes, kernel, **_):
        shape = input_shapes[0]
        if len(shape) != 1:
            raise ValueError(f"rank {len(shape) + 1} input; add Flatten first")
        if len(np.shape(kernel)) != 2 or np.shape(kernel)[0] != shape[0]:
            raise ValueError(f"kernel shape {np.shape(kernel)} for {shape[0]} inputs")
        return (int(np.shape(kernel)[1]),)

    def macs(self) -> int:
        return int(self.kernel.size)

    def output_channels_first(self, kernel):
        return kernel.T  # (out, in)

    def run_float(self, xs):
        y = xs[0].astype(np.float64) @ self.kernel.astype(np.float64)
        if self.bias is not None:
            y = y + self.bias
        return float_activation(y, self.activation).astype(np.float32)

    def run_int8(self, graph, xs):
        acc = (xs[0].astype(np.int64) + input_offset(graph, self)) @ self.qkernel.astype(np.int64).T + self.qbias
        return requantize_clamp(acc, self, graph, self.requant)
