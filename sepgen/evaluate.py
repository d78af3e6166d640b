"""Agreement between a float model and its int8 simulation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Graph
from .quantize import dequantize_tensor, quantize_tensor
from .simulate import run, run_float


@dataclass(frozen=True)
class Agreement:
    samples: int
    top1: float | None  # fraction of samples whose arg-max agrees (vector outputs only)
    max_lsb: float  # max |dequantized int8 output - float output| in units of the output scale
    mean_lsb: float

    def __str__(self) -> str:
        top1 = "" if self.top1 is None else f"top-1 agreement {100 * self.top1:.1f}%, "
        return (f"float vs int8 on {self.samples} samples: {top1}max error {self.max_lsb:.2f} LSB, "
                f"mean {self.mean_lsb:.3f} LSB")


def agreement(float_graph: Graph, int_graph: Graph, x: np.ndarray, batch_size: int = 256) -> Agreement:
    """Compare run_float(float_graph, x) with the int8 simulation of quantize(x)."""
    in_q, out_q = int_graph.tensors[int_graph.input].quant, int_graph.tensors[int_graph.output].quant
    errors, agree = [], []
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start:start + batch_size], np.float32)
        ref = run_float(float_graph, xb)
        got = dequantize_tensor(run(int_graph, quantize_tensor(xb, in_q)), out_q)
        errors.append(np.abs(got - ref).reshape(len(xb), -1) / out_q.scale)
        agree.append(got.reshape(len(xb), -1).argmax(1) == ref.reshape(len(xb), -1).argmax(1))
    err = np.concatenate(errors)
    vector = len(int_graph.tensors[int_graph.output].shape) == 1
    return Agreement(len(err), float(np.concatenate(agree).mean()) if vector else None,
                     float(err.max()), float(err.mean()))
