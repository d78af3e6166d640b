"""resize_nearest: nearest-neighbour resizing of an (H, W, C) map (TFLite RESIZE_NEAREST_NEIGHBOR; Keras
UpSampling2D with interpolation "nearest").

Output row y copies input row ``rows[y]`` and output column x input column ``cols[x]``: TFLite's
GetNearestNeighbor per axis, made once by :func:`sepgen.quantize.resize_nearest_indices` (the frontends call it).
Bytes are copied, so the output keeps the input's quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Layer
from ._common import need_hwc


@dataclass(frozen=True, eq=False)
class ResizeNearest(Layer):
    """Nearest-neighbour resize (upsampling) of an (H, W, C) map; output quantization = input's."""

    op = "resize_nearest"
    kernels = {"micropython": "micropython/layers/resize_nearest.py.j2"}
    rows: tuple[int, ...] = ()  # input row of each output row
    cols: tuple[int, ...] = ()  # input column of each output column

    @classmethod
    def infer_shape(cls, input_shapes, rows=(), cols=(), **_):
        h, w, c = need_hwc(tuple(input_shapes[0]), cls.op)
        if not rows or not cols or not all(0 <= r < h for r in rows) or not all(0 <= x < w for x in cols):
            raise ValueError(f"row/column indices outside the {h}x{w} input")
        return (len(rows), len(cols), c)

    def output_quant(self, input_quants, calibrated):
        return input_quants[0]

    def check_integers(self, graph) -> None:
        if graph.tensors[self.inputs[0]].quant != graph.tensors[self.output].quant:
            raise ValueError("resize_nearest copies bytes: the output quantization must equal the input's")

    def _gather(self, x: np.ndarray) -> np.ndarray:
        return x[:, list(self.rows)][:, :, list(self.cols)]

    def run_float(self, xs):
        return self._gather(xs[0]).astype(np.float32)

    def run_int8(self, graph, xs):
        return self._gather(xs[0]).astype(np.int8)
