"""Keras frontend, merge, elementwise-constant and resize layers: Concatenate, Multiply, Maximum, Minimum,
Rescaling, UpSampling2D.

Registered into the table of :mod:`sepgen.frontends.keras_layers` (which lets these take several inputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir import UnsupportedLayer
from .keras_layers import _handler

if TYPE_CHECKING:
    from .keras import _Translator


@_handler("Concatenate")
def _concatenate(t: _Translator, layer, name: str, xs: list[str]) -> str:
    """Keras' axis counts the batch and a sequence has rank 3: a non-negative axis becomes a negative one (counted
    from the channels), which is the same axis of sepgen's (H, W, C) or (1, T, C) shapes."""
    axis, rank = int(layer.axis), len(layer.input[0].shape)
    if axis % rank == 0:
        raise UnsupportedLayer(name, f"Concatenate(axis={axis})", "joining along the batch axis")
    return t.b.concatenate(name, xs, axis % rank - rank)


@_handler("Multiply")
def _multiply(t: _Translator, layer, name: str, xs: list[str]) -> str:
    return t.b.multiply(name, xs)


@_handler("Rescaling")
def _rescaling(t: _Translator, layer, name: str, xs: list[str]) -> str:
    return t.b.rescaling(name, xs[0], layer.scale, layer.offset)


@_handler("Maximum", "Minimum")
def _min_max(t: _Translator, layer, name: str, xs: list[str]) -> str:
    return (t.b.maximum if type(layer).__name__ == "Maximum" else t.b.minimum)(name, xs)


@_handler("UpSampling2D")
def _upsampling2d(t: _Translator, layer, name: str, xs: list[str]) -> str:
    if layer.interpolation != "nearest" or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayer(name, f"UpSampling2D(interpolation='{layer.interpolation}')",
                               "only nearest, channels_last")
    return t.b.upsample_nearest(name, xs[0], tuple(int(v) for v in layer.size))
