"""GraphBuilder: the one place frontends turn layer descriptions into a float Graph.

It infers shapes, folds BatchNormalization into the preceding convolution or
dense layer, fuses ReLU/ReLU6 into the producer's clamp, and drops Dropout.
Frontends (Keras, NumPy spec) only translate their own vocabulary into calls here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

from ..bounds import LIMIT as MAX_TENSOR, MAX_EXTENT
from ..errors import UserError
from ..ir import ACTIVATIONS, PADDINGS, Graph, Layer, TensorSpec, UnsupportedLayer, unique_name
from ..ops import (Add, AvgPool2D, Concatenation, Conv2D, DepthwiseConv2D, FullyConnected, HardSwish, LeakyRelu,
                   Logistic, MaxPool2D, Maximum, Mean, Minimum, Mul, Pad, Relu, Rescaling, Reshape, ResizeNearest,
                   Softmax)


def _pair(value, name: str, what: str) -> tuple[int, int]:
    """(a, b) from an int or a pair of ints, each in 1..MAX_EXTENT."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise UnsupportedLayer(name, what, f"expected 2 values, got {value}")
    if not all(1 <= v <= MAX_EXTENT for v in value):
        raise UnsupportedLayer(name, f"{what} {value}", f"each value must be in 1..{MAX_EXTENT}")
    return value  # type: ignore[return-value]


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _finite(name: str, what: str, value) -> np.ndarray:
    """float32 weights, refused with the layer's name when any value is NaN/infinite (or overflows float32)."""
    value = _f32(value)
    if not np.all(np.isfinite(value)):
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise UnsupportedLayer(name, f"{what} with {bad} NaN or infinite value{'s' if bad > 1 else ''}",
                               "weights must be finite float32 numbers (was training diverging?)")
    return value


def _uniform(values: np.ndarray, shape: tuple[int, ...]) -> float | None:
    """The one value of a constant that holds a single value and broadcasts over ``shape`` without changing it
    (a scalar, or one value repeated per channel), else None."""
    try:
        same_shape = np.broadcast_shapes(shape, values.shape) == tuple(shape)
    except ValueError:
        return None
    return float(values.flat[0]) if same_shape and np.all(values == values.flat[0]) else None


#: Activations that are ops of their own (TFLite has no fused form): after a conv/dense they follow it as a layer.
#: hard_sigmoid (Keras: relu6(x + 3) / 6) is two: an add of the constant 3 with ReLU6 fused, a multiply by 1/6.
SEPARATE_ACTIVATIONS = {"sigmoid": Logistic, "hard_swish": HardSwish, "hard_sigmoid": None}


class GraphBuilder:
    """Incrementally builds a float :class:`Graph`.  Every method returns the output tensor name."""

    def __init__(self, input_shape: tuple[int, ...], name: str = "model", input_name: str = "input") -> None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) not in (1, 3) or any(d <= 0 for d in shape) or int(np.prod(shape, dtype=object)) >= MAX_TENSOR:
            raise UnsupportedLayer(input_name, "input shape", f"{shape}; need (H, W, C) or (N,) with batch 1")
        self.name = name
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorSpec] = {}
        self.input = self._new_tensor(input_name, shape)
        self._renamed: dict[str, str] = {}  # tensor consumed by a fusion -> the tensor that replaced it
        self._used: set[str] = set()

    # ----------------------------------------------------------------- plumbing
    def _new_tensor(self, name: str, shape: tuple[int, ...]) -> str:
        unique = unique_name(re.sub(r"\W", "_", name) or "t", self.tensors)
        self.tensors[unique] = TensorSpec(unique, tuple(int(d) for d in shape))
        return unique

    def shape(self, tensor: str, layer_name: str = "?") -> tuple[int, ...]:
        """Shape of a tensor; ``layer_name`` (the layer asking) is named in errors."""
        return self.tensors[self._resolve(tensor, layer_name)].shape

    def _resolve(self, tensor: str, layer_name: str) -> str:
        if tensor in self._renamed:
            raise UnsupportedLayer(layer_name, "graph", f"tensor '{tensor}' was fused into a following "
                                   "BatchNormalization/activation but is also used elsewhere")
        if tensor not in self.tensors:
            raise KeyError(tensor)
        return tensor

    def _add(self, cls: type[Layer], name: str, inputs: list[str], out_shape: tuple[int, ...], **fields) -> str:
        inputs = [self._resolve(t, name) for t in inputs]
        if int(np.prod(out_shape, dtype=object)) >= MAX_TENSOR:
            raise UnsupportedLayer(name, f"output shape {tuple(out_shape)}", "tensors must stay under 2^31 elements")
        self._used.update(inputs)
        out = self._new_tensor(name, out_shape)
        layer = cls(name=name, inputs=tuple(inputs), output=out, input_shape=self.tensors[inputs[0]].shape,
                    output_shape=tuple(out_shape), **fields)
        self.layers.append(layer)
        return out

    def layer(self, cls: type[Layer], name: str, inputs: list[str], **fields) -> str:
        """Add any op (a :class:`~sepgen.ir.Layer` subclass, built in or not): the op infers its output
        shape from its inputs and fields; an invalid combination is an UnsupportedLayer naming the layer."""
        shapes = [self.shape(t, name) for t in inputs]
        try:
            out_shape = cls.infer_shape(shapes, **fields)
        except ValueError as exc:
            if isinstance(exc, UserError):
                raise
            raise UnsupportedLayer(name, cls.op, str(exc)) from None
        own = {f.name for f in dataclasses.fields(cls)}
        return self._add(cls, name, inputs, out_shape, **{k: v for k, v in fields.items() if k in own})

    def _need_hwc(self, x: str, name: str, kind: str) -> tuple[int, int, int]:
        shape = self.shape(x, name)
        if len(shape) != 3:
            raise UnsupportedLayer(name, kind, f"needs an (H, W, C) input, got {shape}")
        return shape  # type: ignore[return-value]

    @staticmethod
    def _check_activation(name: str, activation: str | None) -> str:
        activation = activation or "none"
        if activation == "linear":
            activation = "none"
        if activation not in ACTIVATIONS:
            after_dense = " (and softmax after Dense)" if activation == "softmax" else ""
            raise UnsupportedLayer(name, f"activation '{activation}'", "supported: linear, relu, relu6, sigmoid, "
                                   "hard_sigmoid, hard_swish" + after_dense)
        return activation

    # ------------------------------------------------------------------- layers
    def conv2d(self, name: str, x: str, kernel, bias=None, strides=1, dilation=1, padding="valid",
               activation: str | None = None) -> str:
        """Standard convolution; ``kernel`` is HWIO float."""
        return self._spatial(Conv2D, name, x, kernel, bias, strides, dilation, padding, activation)

    def depthwise_conv2d(self, name: str, x: str, kernel, bias=None, strides=1, dilation=1, padding="valid",
                         activation: str | None = None) -> str:
        """Depthwise convolution; ``kernel`` is (kh, kw, in_channels, depth_multiplier) float."""
        return self._spatial(DepthwiseConv2D, name, x, kernel, bias, strides, dilation, padding, activation)

    def separable_conv2d(self, name: str, x: str, depthwise_kernel, pointwise_kernel, bias=None, strides=1,
                         dilation=1, padding="valid", activation: str | None = None) -> str:
        """Keras SeparableConv2D: depthwise (no bias) then 1x1 pointwise with the one bias."""
        mid = self.depthwise_conv2d(f"{name}/depthwise", x, depthwise_kernel, None, strides, dilation, padding)
        return self.conv2d(f"{name}/pointwise", mid, pointwise_kernel, bias, 1, 1, "valid", activation)

    def _then_activation(self, name: str, build, activation: str | None) -> str:
        """``build(activation)`` a conv/dense; an activation that is an op of its own (sigmoid, hard_swish) follows
        it as the layer ``<name>/<activation>``."""
        if activation in SEPARATE_ACTIVATIONS:
            return self.activation(f"{name}/{activation}", build(None), activation)
        return build(activation)

    def _spatial(self, cls, name, x, kernel, bias, strides, dilation, padding, activation) -> str:
        if activation in SEPARATE_ACTIVATIONS:
            return self._then_activation(name, lambda act: self._spatial(cls, name, x, kernel, bias, strides, dilation,
                                                                         padding, act), activation)
        h, w, c = self._need_hwc(x, name, cls.op)
        kernel = _finite(name, "kernel", kernel)
        strides, dilation = _pair(strides, name, "strides"), _pair(dilation, name, "dilation_rate")
        padding = str(padding).lower()
        if padding not in PADDINGS:
            raise UnsupportedLayer(name, f"padding '{padding}'", "supported: same, valid")
        if kernel.ndim != 4 or kernel.shape[2] != c:
            raise UnsupportedLayer(name, "kernel shape", f"{kernel.shape} for {c} input channels")
        if min(strides) < 1 or min(dilation) < 1 or (max(strides) > 1 and max(dilation) > 1):
            raise UnsupportedLayer(name, "strides/dilation", f"strides {strides} with dilation {dilation}")
        cout = kernel.shape[3] if cls is Conv2D else kernel.shape[2] * kernel.shape[3]
        if bias is not None:
            bias = _finite(name, "bias", bias)
            if bias.shape != (cout,):
                raise UnsupportedLayer(name, "bias shape", f"{bias.shape}, expected ({cout},)")
        return self.layer(cls, name, [x], kernel=kernel, bias=bias, strides=strides, dilation=dilation,
                          padding=padding, activation=self._check_activation(name, activation))

    def dense(self, name: str, x: str, kernel, bias=None, activation: str | None = None) -> str:
        shape = self.shape(x, name)
        kernel = _finite(name, "kernel", kernel)
        if len(shape) != 1:
            raise UnsupportedLayer(name, "Dense input", f"rank {len(shape) + 1} input; add Flatten first")
        if kernel.ndim != 2 or kernel.shape[0] != shape[0]:
            raise UnsupportedLayer(name, "kernel shape", f"{kernel.shape} for {shape[0]} inputs")
        if bias is not None:
            bias = _finite(name, "bias", bias)
            if bias.shape != (kernel.shape[1],):
                raise UnsupportedLayer(name, "bias shape", f"{bias.shape}, expected ({kernel.shape[1]},)")
        if activation in SEPARATE_ACTIVATIONS:
            return self._then_activation(name, lambda act: self.dense(name, x, kernel, bias, act), activation)
        softmax = activation == "softmax"
        out = self.layer(FullyConnected, name, [x], kernel=kernel, bias=bias,
                         activation=self._check_activation(name, None if softmax else activation))
        return self.softmax(f"{name}/softmax", out) if softmax else out

    def _pool(self, cls, name, x, pool_size, strides, padding) -> str:
        h, w, c = self._need_hwc(x, name, cls.op)
        pool_size = _pair(pool_size, name, "pool_size")
        strides = pool_size if strides is None else _pair(strides, name, "strides")
        padding = str(padding).lower()
        if padding not in PADDINGS:
            raise UnsupportedLayer(name, f"padding '{padding}'", "supported: same, valid")
        return self.layer(cls, name, [x], pool_size=pool_size, strides=strides, padding=padding)

    def max_pool2d(self, name: str, x: str, pool_size=2, strides=None, padding="valid") -> str:
        return self._pool(MaxPool2D, name, x, pool_size, strides, padding)

    def avg_pool2d(self, name: str, x: str, pool_size=2, strides=None, padding="valid") -> str:
        return self._pool(AvgPool2D, name, x, pool_size, strides, padding)

    def global_avg_pool2d(self, name: str, x: str, keepdims: bool = False) -> str:
        h, w, c = self._need_hwc(x, name, "GlobalAveragePooling2D")
        out = self.layer(Mean, name, [x])
        return self.reshape(f"{name}/keepdims", out, (1, 1, c)) if keepdims else out

    def pad(self, name: str, x: str, paddings) -> str:
        """ZeroPadding2D: ``paddings`` = ((top, bottom), (left, right)) pixels of real 0."""
        h, w, c = self._need_hwc(x, name, "ZeroPadding2D")
        (top, bottom), (left, right) = ((int(a), int(b)) for a, b in paddings)
        if min(top, bottom, left, right) < 0:
            raise UnsupportedLayer(name, "ZeroPadding2D", f"negative padding {paddings}")
        return self.layer(Pad, name, [x], paddings=((top, bottom), (left, right), (0, 0)))

    def reshape(self, name: str, x: str, shape: tuple[int, ...]) -> str:
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != int(np.prod(self.shape(x, name))) or len(shape) not in (1, 3):
            raise UnsupportedLayer(name, "Reshape", f"{self.shape(x)} -> {shape}")
        return self.layer(Reshape, name, [x], shape=shape)

    def flatten(self, name: str, x: str) -> str:
        return self.reshape(name, x, (int(np.prod(self.shape(x))),))

    def add(self, name: str, inputs: list[str], activation: str | None = None, constant=None) -> str:
        """Elementwise sum of two tensors, or of one tensor and a float ``constant``; the smaller operand may be
        broadcast (a scalar, or a trailing part of the other's shape such as a per-channel vector)."""
        return self._binary(Add, "Add", name, inputs, activation, constant)

    def multiply(self, name: str, inputs: list[str], activation: str | None = None, constant=None) -> str:
        """Elementwise product (Keras Multiply, squeeze-excite's channel gate), broadcast like :meth:`add`."""
        return self._binary(Mul, "Multiply", name, inputs, activation, constant)

    def rescaling(self, name: str, x: str, scale, offset) -> str:
        """Keras Rescaling, x * scale + offset (scalars or per-channel vectors).

        Folded into the input quantization (a :class:`Rescaling` layer, no code) when it reads the model input
        and both are scalars (or one value repeated) with scale > 0, once per model; otherwise a multiply by the
        constant scale (left out when 1) then an add of the constant offset (left out when 0), TFLite's MUL and
        ADD arithmetic (named ``<name>/scale`` and ``<name>`` when there are both).  Nothing when the scale is 1
        and the offset 0."""
        scale, offset = np.atleast_1d(_finite(name, "scale", scale)), np.atleast_1d(_finite(name, "offset", offset))
        s, o = _uniform(scale, self.shape(x, name)), _uniform(offset, self.shape(x, name))
        folded = any(isinstance(layer, Rescaling) for layer in self.layers)
        if x == self.input and s is not None and o is not None and s > 0 and (s, o) != (1, 0) and not folded:
            return self.layer(Rescaling, name, [x], scale=s, offset=o)
        y = x
        if np.any(scale != 1):
            y = self.multiply(name if np.all(offset == 0) else f"{name}/scale", [y], constant=scale)
        if np.any(offset != 0):
            y = self.add(name if y != x else f"{name}/offset", [y], constant=offset)
        return y

    def maximum(self, name: str, inputs: list[str], constant=None) -> str:
        """Elementwise maximum (Keras Maximum), operands as for :meth:`add`."""
        return self._binary(Maximum, "Maximum", name, inputs, None, constant)

    def minimum(self, name: str, inputs: list[str], constant=None) -> str:
        """Elementwise minimum (Keras Minimum), operands as for :meth:`add`."""
        return self._binary(Minimum, "Minimum", name, inputs, None, constant)

    def _binary(self, cls, kind: str, name: str, inputs: list[str], activation, constant) -> str:
        if constant is not None:
            constant = _finite(name, "constant", constant)
        operands = len(inputs) + (constant is not None)
        if operands != 2:
            raise UnsupportedLayer(name, kind, f"{operands} operands; exactly 2 are supported")
        return self.layer(cls, name, inputs, activation=self._check_activation(name, activation), constant=constant)

    def upsample_nearest(self, name: str, x: str, size) -> str:
        """Keras UpSampling2D(size, interpolation="nearest"): each pixel repeated size[0] x size[1] times (TFLite's
        RESIZE_NEAREST_NEIGHBOR index rule, without half-pixel centers)."""
        from ..quantize import resize_nearest_indices

        h, w, _ = self._need_hwc(x, name, "UpSampling2D")
        fh, fw = _pair(size, name, "size")
        return self.layer(ResizeNearest, name, [x], rows=resize_nearest_indices(h, h * fh),
                          cols=resize_nearest_indices(w, w * fw))

    def concatenate(self, name: str, inputs: list[str], axis: int = -1) -> str:
        """Inputs joined along ``axis`` of the batch-less shape (Keras axes count the batch: pass axis - 1 for a
        non-negative Keras axis)."""
        return self.layer(Concatenation, name, inputs, axis=int(axis))

    def softmax(self, name: str, x: str, beta: float = 1.0) -> str:
        if len(self.shape(x, name)) != 1:
            raise UnsupportedLayer(name, "Softmax", f"on shape {self.shape(x)}; only over a vector")
        return self.layer(Softmax, name, [x], beta=float(beta))

    # ------------------------------------------------------------ fusions
    def _fusable_producer(self, x: str, name: str, kind: str) -> Layer:
        producer = next((layer for layer in self.layers if layer.output == x), None)
        if producer is None or x in self._used:
            raise UnsupportedLayer(name, kind, "must directly follow a layer it can be fused into, "
                                   "and that layer's output must not be used elsewhere")
        return producer

    def _replace_producer(self, old: Layer, new: Layer, name: str) -> str:
        out = self._new_tensor(name, old.output_shape)
        self.layers[self.layers.index(old)] = dataclasses.replace(new, output=out)
        self._renamed[old.output] = out
        del self.tensors[old.output]
        return out

    def activation(self, name: str, x: str, activation: str) -> str:
        """A standalone ReLU/ReLU6/Activation layer: fused into the producer's clamp where the producer is a
        conv, dense or add without activation whose output nothing else reads; otherwise a Relu op of its own
        (TFLite RELU/RELU6: it requantizes to its own output quantization)."""
        if activation == "softmax":
            return self.softmax(name, x)
        if activation == "hard_sigmoid":
            y = self.add(f"{name}/plus3", [x], "relu6", constant=np.array([3.0], np.float32))
            return self.multiply(name, [y], constant=np.array([1.0 / 6.0], np.float32))
        if activation in SEPARATE_ACTIVATIONS:
            return self.layer(SEPARATE_ACTIVATIONS[activation], name, [x])
        activation = self._check_activation(name, activation)
        if activation == "none":
            return x
        producer = next((layer for layer in self.layers if layer.output == x), None)
        if (isinstance(producer, (Conv2D, DepthwiseConv2D, FullyConnected, Add, Mul)) and producer.activation == "none"
                and x not in self._used):
            return self._replace_producer(producer, dataclasses.replace(producer, activation=activation), name)
        return self.layer(Relu, name, [x], activation=activation)

    def leaky_relu(self, name: str, x: str, alpha: float) -> str:
        """LeakyReLU: x above zero, ``alpha`` * x below (alpha >= 0); a LeakyRelu op of its own (TFLite LEAKY_RELU)."""
        alpha = float(alpha)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise UnsupportedLayer(name, f"LeakyReLU(negative_slope={alpha})", "the slope must be a finite number >= 0")
        return self.layer(LeakyRelu, name, [x], alpha=alpha)

    def batch_norm(self, name: str, x: str, gamma, beta, mean, variance, epsilon: float) -> str:
        """Fold inference-mode BatchNormalization (last axis) into the preceding conv/dense."""
        producer = self._fusable_producer(x, name, "BatchNormalization")
        if not isinstance(producer, (Conv2D, DepthwiseConv2D, FullyConnected)) or producer.activation != "none":
            raise UnsupportedLayer(name, "BatchNormalization",
                                   "only directly after Conv2D/DepthwiseConv2D/SeparableConv2D/Dense without activation")
        c = producer.output_shape[-1]
        for what, value in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", variance),
                            ("epsilon", epsilon)):
            if value is not None:
                _finite(name, f"BatchNormalization {what}", value)
        if not np.all(np.asarray(variance, np.float64) + float(epsilon) > 0):
            raise UnsupportedLayer(name, "BatchNormalization", "moving_variance + epsilon must be > 0")
        gamma_given, beta_given = gamma, beta
        gamma = np.ones(c) if gamma is None else np.asarray(gamma, np.float64)
        beta = np.zeros(c) if beta is None else np.asarray(beta, np.float64)
        factor = gamma / np.sqrt(np.asarray(variance, np.float64) + float(epsilon))
        old_bias = np.zeros(c) if producer.bias is None else producer.bias.astype(np.float64)
        bias = (old_bias - np.asarray(mean, np.float64)) * factor + beta
        k = producer.kernel.astype(np.float64)
        if isinstance(producer, DepthwiseConv2D):  # output channel = in_channel * dm + m
            kernel = k * factor.reshape(k.shape[2], k.shape[3])
        else:
            kernel = k * factor  # broadcast over the last (output) axis
        bn_params = 2 * c + (0 if gamma_given is None else c) + (0 if beta_given is None else c)
        folded = producer.folded_params + bn_params - (c if producer.bias is None else 0)
        new = dataclasses.replace(producer, kernel=_finite(name, "folded kernel", kernel),
                                  bias=_finite(name, "folded bias", bias), folded_params=folded)
        return self._replace_producer(producer, new, name)

    # -------------------------------------------------------------- finish
    def build(self, output: str, source: str = "<memory>", source_bytes: bytes | None = None) -> Graph:
        output = self._resolve(output, "output")
        if not any(not layer.aliases_input for layer in self.layers):
            raise UnsupportedLayer(self.name, "model", "it has no computing layer")
        live = {output}
        for layer in reversed(self.layers):  # drop layers that do not feed the output
            if layer.output in live:
                live.update(layer.inputs)
        layers = tuple(layer for layer in self.layers if layer.output in live)
        tensors = {t: spec for t, spec in self.tensors.items() if t in live}
        digest = hashlib.sha256(source_bytes).hexdigest() if source_bytes is not None else ""
        graph = Graph(name=self.name, layers=layers, tensors=tensors, input=self.input, output=output,
                      source=source, source_sha256=digest)
        graph.validate()
        return graph
