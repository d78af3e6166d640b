"""Keras frontend, 1-D layers: Conv1D, DepthwiseConv1D, SeparableConv1D, 1-D pooling and padding.

A sequence (T, C) is one row of a 2-D map, (1, T, C) (as the TFLite converter writes Conv1D: EXPAND_DIMS ->
CONV_2D -> SQUEEZE), so each 1-D layer is its 2-D counterpart with a (1, k) kernel, (1, s) strides and (1, d)
dilation; the budget then counts a (1, k) window.  Registered into the table of :mod:`sepgen.frontends.keras_layers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir import UnsupportedLayer
from .keras_layers import _activation, _bias, _channels_last, _handler, _not_quantized, _np

if TYPE_CHECKING:
    from .keras import _Translator


# ------------------------------------------------------------ 1-D layers: 2-D layers over one row (1, T, C)
def _one_d(layer, name: str, what: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((1, stride), (1, dilation)) of a 1-D conv layer; causal padding is refused."""
    _channels_last(layer, name)
    _not_quantized(layer, name)
    if layer.padding not in ("same", "valid"):
        raise UnsupportedLayer(name, f"{what}(padding='{layer.padding}')", "supported: same, valid")
    return (1, int(layer.strides[0])), (1, int(getattr(layer, "dilation_rate", (1,))[0]))


@_handler("Conv1D")
def _conv1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    strides, dilation = _one_d(layer, name, "Conv1D")
    if layer.groups != 1:
        raise UnsupportedLayer(name, f"Conv1D groups={layer.groups}", "only groups=1")
    return t.b.conv2d(name, xs[0], _np(layer.kernel)[None], _bias(layer), strides, dilation, layer.padding,
                      _activation(layer.activation, name))


@_handler("DepthwiseConv1D")
def _depthwise_conv1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    strides, dilation = _one_d(layer, name, "DepthwiseConv1D")
    return t.b.depthwise_conv2d(name, xs[0], _np(layer.kernel)[None], _bias(layer), strides, dilation,
                                layer.padding, _activation(layer.activation, name))


@_handler("SeparableConv1D")
def _separable_conv1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    strides, dilation = _one_d(layer, name, "SeparableConv1D")
    return t.b.separable_conv2d(name, xs[0], _np(layer.depthwise_kernel)[None], _np(layer.pointwise_kernel)[None],
                                _bias(layer), strides, dilation, layer.padding, _activation(layer.activation, name))


@_handler("MaxPooling1D", "AveragePooling1D")
def _pool1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    method = t.b.max_pool2d if type(layer).__name__ == "MaxPooling1D" else t.b.avg_pool2d
    return method(name, xs[0], (1, int(layer.pool_size[0])), (1, int(layer.strides[0])), layer.padding)


@_handler("GlobalAveragePooling1D")
def _global_avg_pool1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    _channels_last(layer, name)
    return t.b.global_avg_pool2d(name, xs[0], bool(layer.keepdims))


@_handler("ZeroPadding1D")
def _zero_padding1d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    left, right = (int(v) for v in layer.padding)
    return t.b.pad(name, xs[0], ((0, 0), (left, right)))
