"""What the elementwise two-operand ops (add, mul) share: broadcasting and a constant operand.

Operands: the layer's inputs, plus ``constant`` when the second operand is a constant tensor (TFLite's ADD/MUL of a
weight, e.g. a bias after the converter's dilated-convolution lowering).  One operand has the output's shape; the
other may be smaller, broadcast as TFLite broadcasts it, where its shape without leading 1s is empty (a scalar) or
a suffix of the output's shape: a per-channel vector (C,) or (1, 1, C) as in squeeze-excite.  Flat NHWC index i of
the output then reads the smaller operand at i % size (0 for a scalar), which is the C kernels' indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Layer, QuantParams
from ..quantize import choose_quant_params, quantize_tensor


def _stripped(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape without leading 1s."""
    shape = tuple(int(d) for d in shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def broadcast_output_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of an elementwise op on operands of shapes ``a`` and ``b`` (batch excluded), or
    ValueError: one must be the output, the other the same, a scalar or a suffix of it (leading 1s ignored)."""
    a, b = tuple(int(d) for d in a), tuple(int(d) for d in b)
    big, small = (a, b) if (int(np.prod(a)), len(a)) >= (int(np.prod(b)), len(b)) else (b, a)
    core = _stripped(small)
    if small == big or big[len(big) - len(core):] == core and len(core) <= len(big):
        return big
    raise ValueError(f"operands of shapes {tuple(a)} and {tuple(b)} (supported: equal shapes, a scalar, or a "
                     "trailing part of the other's shape such as a per-channel vector)")


@dataclass(frozen=True, eq=False)
class BinaryLayer(Layer):
    """Two operands (two inputs, or one input and ``constant``), broadcast as described in the module."""

    activation: str = "none"
    constant: np.ndarray | None = None  # float32 second operand (shape as given), or None: two inputs
    # Filled by quantized() (or read from a .tflite file):
    qconstant: np.ndarray | None = None  # int8
    constant_scale: float = 0.0
    constant_zero_point: int = 0

    @classmethod
    def operand_shapes(cls, input_shapes, constant) -> list[tuple[int, ...]]:
        shapes = [tuple(s) for s in input_shapes] + ([] if constant is None else [tuple(np.shape(constant))])
        if len(shapes) != 2:
            raise ValueError(f"{len(shapes)} operands; exactly 2 are supported")
        return shapes

    @classmethod
    def infer_shape(cls, input_shapes, constant=None, **_):
        shapes = cls.operand_shapes(input_shapes, constant)
        out = broadcast_output_shape(*shapes)
        if constant is not None and tuple(shapes[0]) != out:
            raise ValueError(f"constant of shape {shapes[1]} larger than the input {shapes[0]}")
        return out

    # ------------------------------------------------------------------ operands
    def constant_quant(self) -> QuantParams:
        return QuantParams(self.constant_scale, self.constant_zero_point)

    def operand_quants(self, graph: Graph) -> list[QuantParams]:
        quants = [graph.tensors[t].quant for t in self.inputs]
        return quants + ([self.constant_quant()] if self.constant is not None else [])

    def operand_sizes(self, graph: Graph) -> list[int]:
        """Elements of each operand (the output's size for the full one)."""
        sizes = [graph.tensors[t].size for t in self.inputs]
        return sizes + ([int(np.size(self.constant))] if self.constant is not None else [])

    def _operands(self, xs: list[np.ndarray], values: np.ndarray | None) -> list[np.ndarray]:
        """Both operands as (N,) + output-rank arrays that NumPy broadcasts like the C indexing."""
        rank, out = len(self.output_shape), []
        for v in list(xs) + ([] if values is None else [values[None]]):
            core = _stripped(v.shape[1:])
            out.append(v.reshape((v.shape[0],) + (1,) * (rank - len(core)) + core))
        return out

    def float_operands(self, xs):
        return self._operands([x.astype(np.float64) for x in xs],
                              None if self.constant is None else self.constant.astype(np.float64))

    def int_operands(self, xs):
        return self._operands([x.astype(np.int64) for x in xs],
                              None if self.qconstant is None else self.qconstant.astype(np.int64))

    def quantize_constant(self) -> dict:
        """The int8 constant with its own per-tensor quantization from its min/max (as a calibrated tensor)."""
        if self.constant is None:
            return {}
        q = choose_quant_params(float(np.min(self.constant)), float(np.max(self.constant)))
        return dict(qconstant=quantize_tensor(self.constant, q), constant_scale=q.scale,
                    constant_zero_point=q.zero_point)

    def input_quants_with_constant(self, input_quants: list[QuantParams], constant: dict) -> list[QuantParams]:
        if self.constant is None:
            return list(input_quants)
        return list(input_quants) + [QuantParams(constant["constant_scale"], constant["constant_zero_point"])]

    def weight_bytes(self) -> int:
        return 0 if self.constant is None else int(np.size(self.constant))

    def params(self) -> int:
        return 0 if self.constant is None else int(np.size(self.constant))

    def max_operand_magnitudes(self, graph: Graph) -> list[int]:
        """max |q - zero_point| of each operand over int8 q."""
        return [max(abs(-128 - q.zero_point), abs(127 - q.zero_point)) for q in self.operand_quants(graph)]

    def kernel_context(self, graph, variant):
        """Per operand: its element index at the output's flat index ``i`` (``i``, ``0``, ``i % 8``: the same
        expression in C and Python), its C element expression (``input1[i % 8]``, the constant array
        ``<fn>_constant[0]``, ...) and its offset (minus its zero point)."""
        out_size = graph.tensors[self.output].size
        names = ["input1", "input2"][:len(self.inputs)] if len(self.inputs) == 2 else ["input", "{fn}_constant"]
        index = ["i" if n == out_size else ("0" if n == 1 else f"i % {n}") for n in self.operand_sizes(graph)]
        return {"operands": [f"{name}[{ix}]" for name, ix in zip(names, index)], "indices": index,
                "offsets": [-q.zero_point for q in self.operand_quants(graph)]}
