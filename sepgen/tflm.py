"""TensorFlow Lite Micro as the reference: run the ``tflite-micro`` wheel and compare every tensor.

TFLM's Python interpreter (``tflite_micro.python.tflite_micro.runtime``, a pre-release
wheel: ``pip install --pre tflite-micro``) runs the TFLM reference kernels.  With
``InterpreterConfig.kPreserveAllTensors`` every tensor survives the invoke and is
read back with ``GetTensor(i, 0)`` (indices past the model's tensor count crash the
wheel, so only known indices are asked for).

:func:`compare_with_tflm` runs sepgen's simulator and TFLM on the same int8 inputs
and compares the model output and every intermediate tensor that carries a
``source_index`` (all tensors read from a .tflite), reporting the first diverging
layer, sample and flat index as a :class:`sepgen.verification.Mismatch`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import simulate
from .errors import UserError
from .ir import Graph
from .quantize import dequantize_tensor
from .verification import Mismatch


class TFLMUnavailable(UserError):
    """The tflite-micro wheel is not installed."""


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise TFLMUnavailable("comparing with TensorFlow Lite Micro needs the 'tflite-micro' package "
                              "(pip install --pre tflite-micro)") from exc
    return runtime


def _model_io(data: bytes) -> tuple[int, int, int, int]:
    """(tensor count, input tensor index, output tensor index, input tensor type) of subgraph 0."""
    from .frontends.tflite_file import parse_model

    _, model = parse_model(data, Path("<tflite>"))
    g = model.subgraphs[0]
    return len(g.tensors), int(g.inputs[0]), int(g.outputs[0]), int(g.tensors[g.inputs[0]].type)


def _arena_size(data: bytes) -> int:
    """Arena bytes for TFLM with every tensor preserved.

    The wheel's default (10 x the model size) is too small for tiny models, and the wheel does not
    survive a failed allocation (it crashes the process): so every tensor's bytes (all are kept
    alive by kPreserveAllTensors), twice, plus alignment and a fixed allowance for the interpreter.
    """
    from .frontends.tflite_file import parse_model

    _, model = parse_model(data, Path("<tflite>"))
    itemsize = {0: 4, 2: 4, 3: 1, 4: 8, 7: 2, 9: 1}  # FLOAT32, INT32, UINT8, INT64, INT16, INT8
    tensors = model.subgraphs[0].tensors
    total = sum(int(np.prod(t.shape if t.shape is not None else ())) * itemsize.get(int(t.type), 8) + 16
                for t in tensors)
    return 10 * len(data) + 2 * total + (64 << 10)


def run_tflm(tflite, inputs: np.ndarray, tensors: list[int] | None = None,
             input_quant=None) -> list[dict[int, np.ndarray]]:
    """Invoke TFLM once per input; returns per sample {tensor index: array (without batch)}.

    ``tflite`` is a path or the model bytes; ``inputs`` int8 (N,)+shape.  ``tensors`` selects
    the tensor indices to read (default: all).  A float-input model gets each int8 sample
    dequantized with ``input_quant`` (the int8 input tensor's QuantParams) so that its
    QUANTIZE op reproduces the int8 values exactly.
    """
    runtime = _runtime()
    data = Path(tflite).read_bytes() if isinstance(tflite, (str, Path)) else bytes(tflite)
    count, _, _, in_type = _model_io(data)
    wanted = list(range(count)) if tensors is None else [int(t) for t in tensors]
    if any(not 0 <= t < count for t in wanted):
        raise ValueError(f"tensor index out of range (the model has {count} tensors)")
    interpreter = runtime.Interpreter.from_bytes(
        data, arena_size=_arena_size(data), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    results = []
    for x in np.asarray(inputs):
        if in_type == 0:  # FLOAT32 input: feed real values whose QUANTIZE is x
            if input_quant is None:
                raise ValueError("a float-input model needs input_quant to feed int8 samples")
            sample = dequantize_tensor(x, input_quant).astype(np.float32)[None]
        else:
            sample = np.ascontiguousarray(x, dtype=np.int8)[None]
        shape = tuple(int(d) for d in interpreter.get_input_details(0)["shape"])
        interpreter.set_input(sample.reshape(shape), 0)  # a sequence (1, T, C) is (1, 1, T, C) in sepgen
        interpreter.invoke()
        values = {}
        for t in wanted:
            value = np.array(interpreter.GetTensor(t, 0)["tensor_data"])  # {"dtype", "shape", "tensor_data"}
            values[t] = value.reshape(value.shape[1:]) if value.ndim > 1 and value.shape[0] == 1 else value
        results.append(values)
    return results


def compare_with_tflm(graph: Graph, tflite, inputs: np.ndarray) -> Mismatch | None:
    """Simulator vs TFLM on every tensor with a ``source_index``; None when all are equal.

    In the returned Mismatch ``expected`` is TFLM's value and ``actual`` the simulator's.

    Checks in layer order (then sample, then flat NHWC index), so the first mismatch names the
    first diverging layer.  The model output is compared as part of its producing layer.
    """
    x = np.asarray(inputs, dtype=np.int8)
    expected = simulate.run(graph, x, all_tensors=True)
    checked = [(None, graph.input)] + [(layer, layer.output) for layer in graph.layers]
    indices = {name: graph.tensors[name].source_index for _, name in checked
               if graph.tensors[name].source_index is not None}
    if graph.tensors[graph.output].source_index is None:
        raise ValueError(f"model '{graph.name}': its output has no .tflite tensor index (not loaded from .tflite)")
    reference = run_tflm(tflite, x, sorted(set(indices.values())), input_quant=graph.tensors[graph.input].quant)
    for layer, name in checked:
        if name not in indices:
            continue
        got = expected[name].reshape(len(x), -1).astype(np.int64)
        want = np.stack([r[indices[name]].reshape(-1) for r in reference]).astype(np.int64)
        if want.shape != got.shape:
            raise ValueError(f"tensor {indices[name]} ('{name}'): TFLM has {want.shape[1]} elements, "
                             f"the graph {got.shape[1]}")
        diff = np.argwhere(want != got)
        if len(diff):
            sample, index = (int(v) for v in diff[0])
            return Mismatch(sample, layer.name if layer else "<input>", layer.op if layer else "input", index,
                            int(want[sample, index]), int(got[sample, index]))
    return None
