"""Keras frontend, the layer table: each built-in Keras layer class -> one handler that replays it as
:class:`~sepgen.frontends.builder.GraphBuilder` calls (which fold BatchNormalization and fuse ReLU/ReLU6).

A layer is matched by its exact Keras class, so subclasses and ``keras.ops`` calls are never mistaken for
built-in layers.  More handlers live in :mod:`~sepgen.frontends.keras_1d` (1-D layers) and
:mod:`~sepgen.frontends.keras_merge` (merge, elementwise-constant and resize layers); importing this module
registers them.  :mod:`sepgen.frontends.keras` walks the model and calls the handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import keras
import numpy as np

from ..ir import UnsupportedLayer

if TYPE_CHECKING:
    from .keras import _Translator

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
    "rescaling": ("Rescaling",),
}
#: sepgen op -> why Keras models cannot produce it.
NOT_EXPRESSIBLE: dict[str, str] = {}


def _supported_text() -> str:
    main = [n for n in supported_layers() if _HANDLERS[n] is not _identity]
    return ("supported: " + ", ".join(main) + ", Dropout-like layers (identity at inference) "
            "and nested Sequential/functional models")


from . import keras_1d, keras_merge  # noqa: E402,F401  (register more handlers; they use the helpers above)
