"""Keras frontend: an in-memory Keras 3 model, a ``.keras`` archive or an ``.h5`` file -> float Graph.

Conventions: channels_last (NHWC) only, batch 1 (the batch dimension must be ``None`` or 1),
one input and one output.  Kernels are taken in the Keras layouts the IR uses (conv HWIO,
depthwise ``(kh, kw, in_channels, depth_multiplier)``, dense ``(in, out)``).

The model is walked in topological order through the functional graph (each output tensor's
``_keras_history`` -> the node that made it -> that node's input tensors); a Sequential model is
walked through ``model.layers`` in order.  Nested models are inlined (their layers are named
``outer/inner``).  Each Keras layer is translated by one handler of the layer table
(:mod:`sepgen.frontends.keras_layers`, with its ``EXPRESSES``) into :class:`GraphBuilder` calls.
Anything without a handler raises :class:`UnsupportedLayer` -- nothing is silently skipped.

Model files (``.keras``, ``.h5``) are read by :mod:`sepgen.frontends.keras_files`.
"""

from __future__ import annotations

from typing import Any, Iterator

import keras

from ..ir import Graph, UnsupportedLayer, unique_name
from .builder import GraphBuilder
from .keras_layers import (  # noqa: F401  (EXPRESSES, NOT_EXPRESSIBLE, REFUSED_CLASSES: this frontend's tables)
    _HANDLERS,
    EXPRESSES,
    NOT_EXPRESSIBLE,
    REFUSED_CLASSES,
    _builtin_class,
    _supported_text,
    supported_layers,
)


# ===================================================================== graph walk
def _node_of(tensor):
    """The functional-graph node that produced a symbolic Keras tensor."""
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def _topological_nodes(outputs) -> Iterator[Any]:
    """Nodes that the ``outputs`` depend on, each once, producers before consumers (iterative DFS)."""
    done: set[int] = set()
    stack = [(_node_of(t), False) for t in reversed(list(outputs))]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            yield node
            continue
        stack.append((node, True))
        stack.extend((_node_of(t), False) for t in reversed(list(node.input_tensors)))


def _operations(model, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(IR name, operation) of every layer/op the model runs, nested models flattened, in order."""
    if isinstance(model, keras.Sequential):
        ops = list(model.layers)
    else:
        ops = [node.operation for node in _topological_nodes(model.outputs)
               if not getattr(node, "is_input", False)]
    for op in ops:
        if isinstance(op, keras.Model):
            yield from _operations(op, prefix + op.name + "/")
        else:
            yield prefix + op.name, op


def _check_operation(op, name: str) -> str:
    """The handler key of a layer, or UnsupportedLayer naming it."""
    if not isinstance(op, keras.layers.Layer):
        raise UnsupportedLayer(name, f"keras.ops operation '{type(op).__name__}'",
                               "use keras.layers (e.g. layers.Add, layers.ReLU) instead of ops on tensors")
    kind = _builtin_class(op)
    if kind is None:
        raise UnsupportedLayer(name, type(op).__name__, _supported_text())
    return kind


class _Translator:
    """Walks a Keras model and replays it on a :class:`GraphBuilder`."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.b = builder
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        """IR layer names are unique (a shared layer called twice gets ``name_2``)."""
        unique = unique_name(name, self._names)
        self._names.add(unique)
        return unique

    def model(self, model, inputs: list[str], prefix: str = "") -> list[str]:
        """Translate a (possibly nested) model applied to ``inputs``; returns its output tensors."""
        if isinstance(model, keras.Sequential):
            x = inputs[0]
            for layer in model.layers:
                outs = self.call(layer, [x], prefix)
                if len(outs) != 1:
                    raise UnsupportedLayer(layer.name, type(layer).__name__, "multiple outputs")
                x = outs[0]
            return [x]
        values = {id(t): name for t, name in zip(model.inputs, inputs)}
        for node in _topological_nodes(model.outputs):
            if getattr(node, "is_input", False):
                continue
            xs = [values[id(t)] for t in node.input_tensors]
            outs = self.call(node.operation, xs, prefix)
            values.update(zip((id(t) for t in node.output_tensors), outs))
        return [values[id(t)] for t in model.outputs]

    def call(self, op, xs: list[str], prefix: str) -> list[str]:
        """Translate one layer/operation applied to ``xs``."""
        name = prefix + op.name
        if isinstance(op, keras.Model):
            if len(op.inputs) != len(xs):
                raise UnsupportedLayer(name, type(op).__name__, f"nested model with {len(op.inputs)} inputs "
                                       f"called on {len(xs)} tensors")
            return self.model(op, xs, name + "/")
        kind = _check_operation(op, name)
        if kind not in ("Add", "Multiply", "Concatenate", "Maximum", "Minimum") and len(xs) != 1:
            raise UnsupportedLayer(name, kind, f"called on {len(xs)} tensors")
        try:
            return [_HANDLERS[kind](self, op, self._unique(name), xs)]
        except UnsupportedLayer as exc:
            if exc.name == "?":  # GraphBuilder.shape() does not know which layer asked
                raise UnsupportedLayer(name, exc.kind, exc.detail) from None
            raise


def _input_shape(model) -> tuple[int, ...]:
    """(H, W, C) or (N,) of the model's single input; the batch must be None or 1."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if len(inputs) != 1:
        detail = ("it has no defined input: start it with keras.Input(shape) or call build()" if not inputs
                  else f"{len(inputs)} inputs")
        raise UnsupportedLayer(model.name, "model", f"{detail}; exactly one input is supported")
    shape = tuple(inputs[0].shape)
    if shape[0] not in (None, 1) or any(d is None for d in shape[1:]):
        raise UnsupportedLayer(model.name, "input shape", f"{shape}; need a fixed shape with batch None or 1")
    if not str(inputs[0].dtype).startswith(("float", "bfloat")):
        raise UnsupportedLayer(model.name, f"input dtype {inputs[0].dtype}", "only float inputs")
    return tuple(int(d) for d in shape[1:])


def _translate(model, name: str | None, source: str, source_bytes: bytes | None) -> Graph:
    for op_name, op in _operations(model):  # unsupported layers first: they matter more than shapes
        _check_operation(op, op_name)
    shape = _input_shape(model)
    shape = (1,) + shape if len(shape) == 2 else shape  # a sequence (T, C) is one row of a 2-D map
    b = GraphBuilder(shape, name=name or model.name, input_name="input")
    t = _Translator(b)
    outputs = t.model(model, [b.input])
    if len(outputs) != 1:
        raise UnsupportedLayer(model.name, "model", f"{len(outputs)} outputs; exactly one is supported")
    return b.build(outputs[0], source=source, source_bytes=source_bytes)


def from_keras_model(model, name: str | None = None) -> Graph:
    """Translate an in-memory Keras 3 model (Sequential or functional; NHWC, batch 1) to a float Graph.

    ``name`` overrides the graph name (default: ``model.name``).  Raises :class:`UnsupportedLayer`
    naming the first layer (or layer option) that sepgen cannot compile.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a Keras 3 model, got {type(model).__name__}")
    return _translate(model, name, f"<keras model {model.name}>", None)
