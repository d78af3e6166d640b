"""NumPy frontend: one ``.npz`` file = float arrays + a JSON layer spec -> float Graph.

The format is documented in ``docs/numpy-format.md``.  In brief: the archive holds
float arrays under free-form keys and, under the key ``__spec__``, the UTF-8 bytes
of a JSON document as a 1-D ``uint8`` array (:func:`save_npz_model` writes it)::

    {"format": "sepgen-npz", "version": 1, "name": "tiny", "input_shape": [8, 8, 1],
     "layers": [{"name": "conv1", "type": "conv2d", "kernel": "conv1.kernel", "bias": "conv1.bias",
                 "padding": "same", "activation": "relu"}, ...],
     "output": "dense"}

Kernels use Keras layouts (conv HWIO, depthwise ``(kh, kw, cin, depth_multiplier)``,
dense ``(in, out)``).  The file is read with ``allow_pickle=False``; every error is a
one-line :class:`ModelFileError` (malformed file) or :class:`UnsupportedLayer`
(well-formed but not compilable), both naming the file and, where there is one, the layer.
Graphs are made only through :class:`GraphBuilder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import one_line
from ..ir import Graph, UnsupportedLayer
from . import ModelFileError, register
from .builder import GraphBuilder
from .npz_format import (  # noqa: F401  (re-exported: the format's public helpers)
    FORMAT, INPUT_NAME, SPEC_KEY, VERSION, _COMMON_KEYS, _TOP_KEYS, _LayerSpec, _is_int, read_npz_model,
    save_npz_model,
)


Handler = Callable[[GraphBuilder, _LayerSpec, list[str]], str]
_HANDLERS: dict[str, tuple[Handler, tuple[str, ...]]] = {}


def _handler(kind: str, *keys: str) -> Callable[[Handler], Handler]:
    """Register the translation of layer type ``kind``, which accepts ``keys`` besides name/type/inputs."""

    def wrap(fn: Handler) -> Handler:
        _HANDLERS[kind] = (fn, _COMMON_KEYS + keys)
        return fn

    return wrap


_SPATIAL = ("strides", "dilation", "padding", "activation")


@_handler("conv2d", "kernel", "bias", *_SPATIAL)
def _conv2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.conv2d(s.name, xs[0], s.array("kernel"), s.array("bias", False), s.ints("strides", 1),
                    s.ints("dilation", 1), s.string("padding", "valid"), s.string("activation", "linear"))


@_handler("depthwise_conv2d", "kernel", "bias", *_SPATIAL)
def _depthwise_conv2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.depthwise_conv2d(s.name, xs[0], s.array("kernel"), s.array("bias", False), s.ints("strides", 1),
                              s.ints("dilation", 1), s.string("padding", "valid"),
                              s.string("activation", "linear"))


@_handler("separable_conv2d", "depthwise_kernel", "pointwise_kernel", "bias", *_SPATIAL)
def _separable_conv2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.separable_conv2d(s.name, xs[0], s.array("depthwise_kernel"), s.array("pointwise_kernel"),
                              s.array("bias", False), s.ints("strides", 1), s.ints("dilation", 1),
                              s.string("padding", "valid"), s.string("activation", "linear"))


# 1-D layers (a sequence (T, C) is the row (1, T, C)): Keras 1-D kernel layouts, int strides/dilation/pool sizes.
def _row(s: _LayerSpec, key: str, default):
    value = s.ints(key, default)
    if value is not None and not _is_int(value):
        raise s.error(f"'{key}' of a 1-D layer must be one positive integer, got {list(value)!r}")
    return None if value is None else (1, value)


@_handler("conv1d", "kernel", "bias", *_SPATIAL)
def _conv1d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.conv2d(s.name, xs[0], s.array("kernel")[None], s.array("bias", False), _row(s, "strides", 1),
                    _row(s, "dilation", 1), s.string("padding", "valid"), s.string("activation", "linear"))


@_handler("depthwise_conv1d", "kernel", "bias", *_SPATIAL)
def _depthwise_conv1d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.depthwise_conv2d(s.name, xs[0], s.array("kernel")[None], s.array("bias", False), _row(s, "strides", 1),
                              _row(s, "dilation", 1), s.string("padding", "valid"), s.string("activation", "linear"))


@_handler("separable_conv1d", "depthwise_kernel", "pointwise_kernel", "bias", *_SPATIAL)
def _separable_conv1d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.separable_conv2d(s.name, xs[0], s.array("depthwise_kernel")[None], s.array("pointwise_kernel")[None],
                              s.array("bias", False), _row(s, "strides", 1), _row(s, "dilation", 1),
                              s.string("padding", "valid"), s.string("activation", "linear"))


@_handler("max_pool1d", "pool_size", "strides", "padding")
def _max_pool1d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.max_pool2d(s.name, xs[0], _row(s, "pool_size", 2), _row(s, "strides", None), s.string("padding", "valid"))


@_handler("avg_pool1d", "pool_size", "strides", "padding")
def _avg_pool1d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.avg_pool2d(s.name, xs[0], _row(s, "pool_size", 2), _row(s, "strides", None), s.string("padding", "valid"))


@_handler("dense", "kernel", "bias", "activation")
def _dense(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    kernel = s.array("kernel")
    bias = s.vector("bias", kernel.shape[-1], False) if kernel.ndim == 2 else s.array("bias", False)
    return b.dense(s.name, xs[0], kernel, bias, s.string("activation", "linear"))


@_handler("batch_norm", "gamma", "beta", "moving_mean", "moving_variance", "epsilon")
def _batch_norm(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    c = b.shape(xs[0])[-1]
    epsilon = s.number("epsilon", 1e-3)
    variance = s.vector("moving_variance", c)
    if epsilon < 0 or np.any(variance.astype(np.float64) + epsilon <= 0):
        raise s.error("moving_variance + epsilon must be positive")
    return b.batch_norm(s.name, xs[0], s.vector("gamma", c, False), s.vector("beta", c, False),
                        s.vector("moving_mean", c), variance, epsilon)


def _activation_handler(kind: str) -> None:
    """A layer type that is one activation function, applied as an op of its own (GraphBuilder.activation)."""

    @_handler(kind)
    def _activation(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
        return b.activation(s.name, xs[0], kind)


for _kind in ("relu", "relu6", "sigmoid", "hard_swish", "hard_sigmoid"):
    _activation_handler(_kind)


@_handler("leaky_relu", "negative_slope")
def _leaky_relu(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.leaky_relu(s.name, xs[0], s.number("negative_slope", 0.3))


@_handler("max_pool2d", "pool_size", "strides", "padding")
def _max_pool2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.max_pool2d(s.name, xs[0], s.ints("pool_size", 2), s.ints("strides", None),
                        s.string("padding", "valid"))


@_handler("avg_pool2d", "pool_size", "strides", "padding")
def _avg_pool2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.avg_pool2d(s.name, xs[0], s.ints("pool_size", 2), s.ints("strides", None),
                        s.string("padding", "valid"))


@_handler("global_avg_pool2d", "keepdims")
def _global_avg_pool2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.global_avg_pool2d(s.name, xs[0], s.boolean("keepdims", False))


@_handler("flatten")
def _flatten(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.flatten(s.name, xs[0])


@_handler("reshape", "target_shape")
def _reshape(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    shape = s.entry.get("target_shape")
    if (not isinstance(shape, list) or not shape or not all(_is_int(d) and (d >= 1 or d == -1) for d in shape)
            or shape.count(-1) > 1):
        raise s.error(f"reshape needs 'target_shape': a list of positive integers (at most one -1), got {shape!r}")
    if -1 in shape:
        known, total = int(np.prod([d for d in shape if d != -1])), int(np.prod(b.shape(xs[0])))
        if total % known:
            raise s.error(f"cannot reshape {b.shape(xs[0])} to {shape}")
        shape = [total // known if d == -1 else d for d in shape]
    return b.reshape(s.name, xs[0], tuple(shape))


@_handler("zero_padding2d", "padding")
def _zero_padding2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    value = s.entry.get("padding", 1)
    if _is_int(value) and value >= 0:
        value = [[value, value], [value, value]]
    elif isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v >= 0 for v in value):
        value = [[value[0], value[0]], [value[1], value[1]]]
    if not (isinstance(value, list) and len(value) == 2 and all(
            isinstance(p, list) and len(p) == 2 and all(_is_int(v) and 0 <= v <= 1 << 15 for v in p) for p in value)):
        raise s.error(f"'padding' must be n, [rows, cols] or [[top, bottom], [left, right]] of non-negative "
                      f"integers, got {s.entry.get('padding')!r}")
    return b.pad(s.name, xs[0], value)


@_handler("add", "activation", "constant")
def _add(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.add(s.name, xs, s.string("activation", "linear"), s.array("constant", False))


@_handler("multiply", "activation", "constant")
def _multiply(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.multiply(s.name, xs, s.string("activation", "linear"), s.array("constant", False))


@_handler("rescaling", "scale", "offset")
def _rescaling(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.rescaling(s.name, xs[0], s.number("scale", 1.0), s.number("offset", 0.0))


@_handler("maximum", "constant")
def _maximum(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.maximum(s.name, xs, s.array("constant", False))


@_handler("minimum", "constant")
def _minimum(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.minimum(s.name, xs, s.array("constant", False))


@_handler("upsampling2d", "size")
def _upsampling2d(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.upsample_nearest(s.name, xs[0], s.ints("size", 2))


@_handler("concatenate", "axis")
def _concatenate(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    axis = s.entry.get("axis", -1)
    if not _is_int(axis):
        raise s.error(f"'axis' must be an integer, got {axis!r}")
    return b.concatenate(s.name, xs, axis)


@_handler("softmax")
def _softmax(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    return b.softmax(s.name, xs[0])


@_handler("dropout", "rate")
def _dropout(b: GraphBuilder, s: _LayerSpec, xs: list[str]) -> str:
    rate = s.number("rate", 0.0)
    if not 0.0 <= rate < 1.0:
        raise s.error(f"'rate' must be in [0, 1), got {rate}")
    return xs[0]  # identity at inference


#: Layer types the spec accepts (sorted), for messages and docs.
SPEC_TYPES: tuple[str, ...] = tuple(sorted(_HANDLERS))

#: sepgen op -> the spec layer types that produce it (checked against the handlers by the registry test).
#: Every op in sepgen.ops.BUILTIN_OPS is here or in NOT_EXPRESSIBLE.
EXPRESSES: dict[str, tuple[str, ...]] = {
    "conv2d": ("conv2d", "separable_conv2d", "conv1d", "separable_conv1d"),
    "depthwise_conv2d": ("depthwise_conv2d", "separable_conv2d", "depthwise_conv1d", "separable_conv1d"),
    "fully_connected": ("dense",), "max_pool2d": ("max_pool2d", "max_pool1d"),
    "avg_pool2d": ("avg_pool2d", "avg_pool1d"),
    "mean": ("global_avg_pool2d",), "add": ("add", "rescaling"), "softmax": ("softmax",),
    "reshape": ("flatten", "reshape"),
    "pad": ("zero_padding2d",), "relu": ("relu", "relu6"), "leaky_relu": ("leaky_relu",), "logistic": ("sigmoid",),
    "hard_swish": ("hard_swish",), "mul": ("multiply", "hard_sigmoid", "rescaling"),
    "concatenation": ("concatenate",), "maximum": ("maximum",), "minimum": ("minimum",),
    "resize_nearest": ("upsampling2d",), "rescaling": ("rescaling",),
}
#: sepgen op -> why the spec cannot express it.
NOT_EXPRESSIBLE: dict[str, str] = {}


# --------------------------------------------------------------- the graph
def _with_source(exc: UnsupportedLayer, source: str) -> UnsupportedLayer:
    """Prefix an UnsupportedLayer's message with the file name (name/kind/detail stay as they are)."""
    if not str(exc).startswith(f"{source}: "):
        exc.args = (one_line(f"{source}: {exc}"),)
    return exc


def _check_name(source: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ModelFileError(f"{source}: {what} must be a non-empty printable string, got {value!r}")
    return value


def graph_from_spec(spec: dict, arrays: dict[str, np.ndarray], source: str = "<memory>",
                    source_bytes: bytes | None = None, default_name: str = "model",
                    graph_source: str | None = None) -> Graph:
    """Translate a parsed spec and its arrays into a float Graph (strictly validated).

    ``source`` names the file in error messages; ``graph_source`` (default: ``source``) becomes
    ``Graph.source``, the name printed in the generated C banner.
    """
    try:
        return _translate(spec, arrays, source, source_bytes, default_name,
                          source if graph_source is None else graph_source)
    except UnsupportedLayer as exc:
        raise _with_source(exc, source) from None


def _translate(spec: dict, arrays: dict[str, np.ndarray], source: str, source_bytes: bytes | None,
               default_name: str, graph_source: str) -> Graph:
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ModelFileError(f"{source}: unknown top-level key '{unknown[0]}' in the spec "
                             f"(allowed: {', '.join(sorted(_TOP_KEYS))})")
    if spec.get("format") != FORMAT:
        raise ModelFileError(f"{source}: spec 'format' is {spec.get('format')!r}; expected '{FORMAT}'")
    version = spec.get("version")
    if not _is_int(version) or version != VERSION:
        raise ModelFileError(f"{source}: spec 'version' is {version!r}; this sepgen reads version {VERSION}")
    name = _check_name(source, spec.get("name", default_name), "'name'")
    shape = spec.get("input_shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 2, 3)
            or not all(_is_int(d) and d >= 1 for d in shape)):
        raise ModelFileError(f"{source}: 'input_shape' must be [H, W, C] (or [T, C] for a sequence, [N] for a "
                             f"vector) of positive integers, batch excluded; got {shape!r}")
    if len(shape) == 2:
        shape = [1] + shape  # a sequence is one row
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelFileError(f"{source}: 'layers' must be a non-empty list of layer objects")

    b = GraphBuilder(tuple(shape), name=name, input_name=INPUT_NAME)
    outputs: dict[str, str] = {INPUT_NAME: b.input}  # layer name -> its output tensor
    previous = b.input
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise ModelFileError(f"{source}: layers[{i}] must be a JSON object, got {type(entry).__name__}")
        lname = _check_name(source, entry.get("name"), f"layers[{i}] 'name'")
        if lname in outputs:
            raise ModelFileError(f"{source}: layer '{lname}': duplicate layer name"
                                 + (f" ('{INPUT_NAME}' names the model input)" if lname == INPUT_NAME else ""))
        kind = entry.get("type")
        if not isinstance(kind, str):
            raise ModelFileError(f"{source}: layer '{lname}': 'type' must be one of {', '.join(SPEC_TYPES)}, "
                                 f"got {kind!r}")
        if kind not in _HANDLERS:
            raise UnsupportedLayer(lname, f"layer type '{kind}'", f"supported: {', '.join(SPEC_TYPES)}")
        handler, allowed = _HANDLERS[kind]
        extra = sorted(set(entry) - set(allowed))
        if extra:
            raise ModelFileError(f"{source}: layer '{lname}': unknown key '{extra[0]}' for type '{kind}' "
                                 f"(allowed: {', '.join(sorted(allowed))})")
        refs = entry.get("inputs")
        binary = kind in ("add", "multiply", "maximum", "minimum", "concatenate")
        if refs is None:
            if binary and "constant" not in entry:
                raise ModelFileError(f"{source}: layer '{lname}': {kind} needs 'inputs': the names of its input "
                                     "layers" + (" (or 'constant')" if kind != "concatenate" else ""))
            xs = [previous]
        else:
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs) or not refs:
                raise ModelFileError(f"{source}: layer '{lname}': 'inputs' must be a non-empty list of layer "
                                     f"names, got {refs!r}")
            missing = [r for r in refs if r not in outputs]
            if missing:
                raise ModelFileError(f"{source}: layer '{lname}': input '{missing[0]}' is not '{INPUT_NAME}' "
                                     "or an earlier layer")
            if not binary and len(refs) != 1:
                raise ModelFileError(f"{source}: layer '{lname}': {kind} takes exactly 1 input, got {len(refs)}")
            xs = [outputs[r] for r in refs]
        try:
            previous = outputs[lname] = handler(b, _LayerSpec(source, entry, arrays, lname, kind), xs)
        except UnsupportedLayer as exc:
            if exc.name == "?":  # GraphBuilder.shape() does not know which layer asked
                raise UnsupportedLayer(lname, exc.kind, exc.detail) from None
            raise

    out_name = spec.get("output")
    if out_name is None:
        out_name = layers[-1]["name"]
    elif not isinstance(out_name, str) or out_name not in outputs or out_name == INPUT_NAME:
        raise ModelFileError(f"{source}: 'output' must name a layer, got {out_name!r}")
    return b.build(outputs[out_name], source=graph_source, source_bytes=source_bytes)


@register(".npz")
def load_npz(path: str | Path, **options: Any) -> Graph:
    """Load a sepgen ``.npz`` model (see ``docs/numpy-format.md``) as a float Graph."""
    path = Path(path)
    if options:
        raise TypeError(f"the .npz loader takes no options, got {', '.join(sorted(options))}")
    spec, arrays, data = read_npz_model(path)
    # Graph.source is the bare file name so that the generated C does not depend on the directory.
    return graph_from_spec(spec, arrays, source=str(path), source_bytes=data, default_name=path.stem,
                           graph_source=path.name)
