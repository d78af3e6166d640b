"""Keras frontend: an in-memory Keras 3 model, a ``.keras`` archive or an ``.h5`` file -> float Graph.

Conventions: channels_last (NHWC) only, batch 1 (the batch dimension must be ``None`` or 1),
one input and one output.  Kernels are taken in the Keras layouts the IR uses (conv HWIO,
depthwise ``(kh, kw, in_channels, depth_multiplier)``, dense ``(in, out)``).

The model is walked in topological order through the functional graph (each output tensor's
``_keras_history`` -> the node that made it -> that node's input tensors); a Sequential model is
walked through ``model.layers`` in order.  Nested models are inlined (their layers are named
``outer/inner``).  Each Keras layer is translated by one handler into :class:`GraphBuilder` calls
(which fold BatchNormalization and fuse ReLU/ReLU6); a layer is matched by its exact Keras class,
so subclasses and ``keras.ops`` calls are never mistaken for built-in layers.  Anything without a
handler raises :class:`UnsupportedLayer` -- nothing is silently skipped.

Model files (``.keras``, ``.h5``) are read by :mod:`sepgen.frontends.keras_files`.

Size: ~400 lines, kept whole on purpose: it is one translation table (a handler per Keras class) plus
the model walk that feeds it; splitting it would scatter the table that EXPRESSES and the registry
test check.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import keras
import numpy as np

from ..ir import Graph, UnsupportedLayer, unique_name
from .builder import GraphBuilder

#: Layers that carry Python code; refused in files before Keras deserializes anything.
REFUSED_CLASSES = ("Lambda", "TFOpLambda", "SlicingOpLambda")


def _np(variable) -> np.ndarray:
    """A Keras variable as a float32 NumPy array (a copy).

    The backend tensor's own ``.numpy()`` is used first: ``keras.ops.convert_to_numpy`` on a TF
    variable warns under NumPy 2 (``__array__`` without ``copy``).
    """
    value = getattr(variable, "value", variable)
    try:
        array = value.numpy()
    except Exception:  # backends whose tensors have no (usable) .numpy()
        array = keras.ops.convert_to_numpy(value)
    return np.array(array, dtype=np.float32)


# ===================================================================== layer handlers
Handler = Callable[["_Translator", Any, str, list[str]], str]
_HANDLERS: dict[str, Handler] = {}


def _handler(*class_names: str) -> Callable[[Handler], Handler]:
    """Register a translation for the built-in ``keras.layers`` classes of these names."""

    def wrap(fn: Handler) -> Handler:
        for class_name in class_names:
            _HANDLERS[class_name] = fn
        return fn

    return wrap


def supported_layers() -> list[str]:
    """Names of the Keras layer classes this frontend translates."""
    return sorted(_HANDLERS)


def _builtin_class(layer) -> str | None:
    """The layer's class name if it is exactly a built-in ``keras.layers`` class with a handler."""
    name = type(layer).__name__
    return name if name in _HANDLERS and type(layer) is getattr(keras.layers, name, None) else None


def _channels_last(layer, name: str) -> None:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise UnsupportedLayer(name, f"data_format '{fmt}'", "only channels_last (NHWC)")


def _not_quantized(layer, name: str) -> None:
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise UnsupportedLayer(name, f"Keras-quantized {type(layer).__name__} ({mode})",
                               "give sepgen the float model; it quantizes itself")


_ACTIVATIONS = ("linear", "relu", "relu6", "softmax", "sigmoid", "hard_swish", "hard_sigmoid")


def _activation(fn, name: str) -> str:
    """The name of a Keras activation function, if it is one the builder may accept."""
    for candidate in _ACTIVATIONS:
        if fn is keras.activations.get(candidate):
            return candidate
    label = getattr(fn, "__name__", type(fn).__name__)
    raise UnsupportedLayer(name, f"activation '{label}'", "supported: linear, relu, relu6, sigmoid, hard_sigmoid, "
                           "hard_swish (hard_silu), softmax")


def _bias(layer) -> np.ndarray | None:
    return _np(layer.bias) if getattr(layer, "use_bias", False) and layer.bias is not None else None


@_handler("InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
          "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")
def _identity(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    """Layers that are the identity at inference."""
    return xs[0]


@_handler("Conv2D")
def _conv2d(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    _not_quantized(layer, name)
    if layer.groups != 1:
        raise UnsupportedLayer(name, f"Conv2D groups={layer.groups}", "only groups=1")
    return t.b.conv2d(name, xs[0], _np(layer.kernel), _bias(layer), layer.strides, layer.dilation_rate,
                      layer.padding, _activation(layer.activation, name))


@_handler("DepthwiseConv2D")
def _depthwise_conv2d(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    _not_quantized(layer, name)
    return t.b.depthwise_conv2d(name, xs[0], _np(layer.kernel), _bias(layer), layer.strides,
                                layer.dilation_rate, layer.padding, _activation(layer.activation, name))


@_handler("SeparableConv2D")
def _separable_conv2d(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return t.b.separable_conv2d(name, xs[0], _np(layer.depthwise_kernel), _np(layer.pointwise_kernel),
                                _bias(layer), layer.strides, layer.dilation_rate, layer.padding,
                                _activation(layer.activation, name))


@_handler("Dense")
def _dense(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _not_quantized(layer, name)
    return t.b.dense(name, xs[0], _np(layer.kernel), _bias(layer), _activation(layer.activation, name))


def _last_axis(axis, rank: int) -> bool:
    """True if a Keras ``axis`` (int or 1-element list) is the last axis of a rank-``rank`` tensor."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    return int(axis) in (-1, rank - 1)


@_handler("BatchNormalization")
def _batch_norm(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    rank = len(t.b.shape(xs[0], name)) + 1  # with the batch
    if not _last_axis(layer.axis, rank):
        raise UnsupportedLayer(name, f"BatchNormalization axis={layer.axis}", "only the last (channel) axis")
    gamma = _np(layer.gamma) if layer.scale else None
    beta = _np(layer.beta) if layer.center else None
    return t.b.batch_norm(name, xs[0], gamma, beta, _np(layer.moving_mean), _np(layer.moving_variance),
                          float(layer.epsilon))


@_handler("ReLU")
def _relu(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    max_value = None if layer.max_value is None else float(layer.max_value)
    if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0 or max_value not in (None, 6.0):
        raise UnsupportedLayer(name, f"ReLU(max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                               f"threshold={layer.threshold})", "only ReLU() and ReLU(6)")
    return t.b.activation(name, xs[0], "relu" if max_value is None else "relu6")


@_handler("LeakyReLU")
def _leaky_relu(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    slope = getattr(layer, "negative_slope", getattr(layer, "alpha", None))
    return t.b.leaky_relu(name, xs[0], float(slope))


@_handler("Activation")
def _activation_layer(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    return t.b.activation(name, xs[0], _activation(layer.activation, name))


@_handler("Softmax")
def _softmax(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    if not _last_axis(layer.axis, len(t.b.shape(xs[0], name)) + 1):
        raise UnsupportedLayer(name, f"Softmax axis={layer.axis}", "only the last axis")
    return t.b.softmax(name, xs[0])


def _pool(method: Callable[..., str], layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return method(name, xs[0], layer.pool_size, layer.strides, layer.padding)


@_handler("MaxPooling2D")
def _max_pool(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    return _pool(t.b.max_pool2d, layer, name, xs)


@_handler("AveragePooling2D")
def _avg_pool(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    return _pool(t.b.avg_pool2d, layer, name, xs)


@_handler("GlobalAveragePooling2D")
def _global_avg_pool(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return t.b.global_avg_pool2d(name, xs[0], bool(layer.keepdims))


@_handler("Flatten")
def _flatten(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return t.b.flatten(name, xs[0])


@_handler("Reshape")
def _reshape(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    shape = [int(d) for d in layer.target_shape]
    if -1 in shape:
        known, total = int(np.prod([d for d in shape if d != -1])), int(np.prod(t.b.shape(xs[0], name)))
        if shape.count(-1) != 1 or known <= 0 or total % known:
            raise UnsupportedLayer(name, "Reshape", f"{t.b.shape(xs[0], name)} -> {tuple(shape)}")
        shape = [total // known if d == -1 else d for d in shape]
    return t.b.reshape(name, xs[0], tuple([1] + shape if len(shape) == 2 else shape))  # (T, C): one row


@_handler("ZeroPadding2D")
def _zero_padding(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return t.b.pad(name, xs[0], layer.padding)


@_handler("Add")
def _add(t: "_Translator", layer, name: str, xs: list[str]) -> str:
    return t.b.add(name, xs)


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


#: sepgen op -> the Keras layer classes that produce it (checked against the handlers by the registry test).
#: Every op in sepgen.ops.BUILTIN_OPS is here or in NOT_EXPRESSIBLE.
EXPRESSES: dict[str, tuple[str, ...]] = {
    "conv2d": ("Conv2D", "SeparableConv2D", "Conv1D", "SeparableConv1D"),
    "depthwise_conv2d": ("DepthwiseConv2D", "SeparableConv2D", "DepthwiseConv1D", "SeparableConv1D"),
    "fully_connected": ("Dense",), "max_pool2d": ("MaxPooling2D", "MaxPooling1D"),
    "avg_pool2d": ("AveragePooling2D", "AveragePooling1D"), "mean": ("GlobalAveragePooling2D", "GlobalAveragePooling1D"),
    "add": ("Add", "Rescaling"), "softmax": ("Softmax", "Activation", "Dense"), "reshape": ("Flatten", "Reshape"),
    "pad": ("ZeroPadding2D", "ZeroPadding1D"), "relu": ("ReLU", "Activation"), "logistic": ("Activation",),
    "leaky_relu": ("LeakyReLU",), "hard_swish": ("Activation",),
    "mul": ("Multiply", "Activation", "Rescaling"), "concatenation": ("Concatenate",),
    "maximum": ("Maximum",), "minimum": ("Minimum",), "resize_nearest": ("UpSampling2D",),
}
#: sepgen op -> why Keras models cannot produce it.
NOT_EXPRESSIBLE: dict[str, str] = {}


def _supported_text() -> str:
    main = [n for n in supported_layers() if _HANDLERS[n] is not _identity]
    return ("supported: " + ", ".join(main) + ", Dropout-like layers (identity at inference) "
            "and nested Sequential/functional models")


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


from . import keras_1d, keras_merge  # noqa: E402,F401  (register more handlers; they use the helpers above)
