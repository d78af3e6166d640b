"""NumPy simulator: runs each op's own float and int8 functions, vectorized over the batch.

The int8 functions (:meth:`sepgen.ir.Layer.run_int8`, in :mod:`sepgen.ops`) define what the generated
C must compute, byte for byte; they use only :mod:`sepgen.fixedpoint` for rounding arithmetic and the
integer parameters stored in the graph (never re-derived).  The float functions define the float
model used for calibration and for the float-vs-int8 agreement.

Arrays are NHWC with a leading batch axis: x.shape == (N,) + tensor.shape.
"""

from __future__ import annotations

import numpy as np

from . import ops  # noqa: F401  (registers the op classes)
from .arrays import batched
from .ir import Graph


def _check_batch(graph: Graph, x: np.ndarray) -> np.ndarray:
    """(N,) + input shape, as sepgen.arrays checks every user array (one unbatched sample gets N = 1)."""
    return batched(graph, np.asarray(x), "simulator input", "inputs")


def run_float(graph: Graph, x: np.ndarray, all_tensors: bool = False):
    """Float forward pass.  x: float (N,)+input shape.  Returns the output, or every tensor by name."""
    values = {graph.input: _check_batch(graph, x).astype(np.float32)}
    for layer in graph.layers:
        values[layer.output] = layer.run_float([values[t] for t in layer.inputs])
    return values if all_tensors else values[graph.output]


def run(graph: Graph, x: np.ndarray, all_tensors: bool = False):
    """int8 forward pass of a quantized graph.  x: int8 (N,)+input shape.  Output or every tensor by name."""
    if not graph.is_quantized:
        raise ValueError(f"model '{graph.name}' is not quantized; run sepgen.quantize first")
    x = _check_batch(graph, x)
    if x.dtype != np.int8:
        raise ValueError(f"int8 input expected, got {x.dtype}")
    values = {graph.input: x}
    for layer in graph.layers:
        values[layer.output] = layer.run_int8(graph, [values[t] for t in layer.inputs])
    return values if all_tensors else values[graph.output]
