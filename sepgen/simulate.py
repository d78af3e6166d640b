"""NumPy simulator: one pure function per op, float and int8, vectorized over the batch.

The int8 functions define what the generated C must compute, byte for byte; they
use only :mod:`sepgen.fixedpoint` for rounding arithmetic and the integer
parameters stored in the graph (never re-derived here).  The float functions
define the float model used for calibration and for the float-vs-int8 agreement.

Arrays are NHWC with a leading batch axis: x.shape == (N,) + tensor.shape.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import fixedpoint as fp
from .ir import (
    AvgPool2D, Conv2D, DepthwiseConv2D, Graph, Layer,
)

FloatOp = Callable[[Layer, list[np.ndarray]], np.ndarray]
IntOp = Callable[[Layer, Graph, list[np.ndarray]], np.ndarray]
FLOAT_OPS: dict[str, FloatOp] = {}
INT_OPS: dict[str, IntOp] = {}


def _float_op(op: str):
    def wrap(fn):
        FLOAT_OPS[op] = fn
        return fn
    return wrap


def _int_op(op: str):
    def wrap(fn):
        INT_OPS[op] = fn
        return fn
    return wrap


# ------------------------------------------------------------------ windows
def _windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], dilation: tuple[int, int],
             pads: tuple[int, int], out_hw: tuple[int, int], fill) -> np.ndarray:
    """Sliding windows of an NHWC batch: (N, out_h, out_w, C, kh, kw), out-of-image taps = ``fill``."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow) = kernel, strides, dilation, pads, out_hw
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    pb, pr = max(need_h - h - pt, 0), max(need_w - w - pl, 0)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    return win[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, ::dh, ::dw]


def _valid_counts(layer: AvgPool2D) -> np.ndarray:
    """Number of in-image taps of each pooling window: (out_h, out_w)."""
    ones = np.ones((1,) + tuple(layer.input_shape[:2]) + (1,), np.int64)
    win = _windows(ones, layer.pool_size, layer.strides, (1, 1), layer.pads(), layer.output_shape[:2], 0)
    return win.sum(axis=(3, 4, 5))[0]


def _conv(xo: np.ndarray, layer: Conv2D | DepthwiseConv2D, kernel: np.ndarray) -> np.ndarray:
    """Convolution core on offset-corrected inputs (pad taps contribute 0), Keras-layout kernel."""
    win = _windows(xo, layer.kernel_size, layer.strides, layer.dilation, layer.pads(), layer.output_shape[:2], 0)
    if isinstance(layer, DepthwiseConv2D):
        out = np.einsum("nyxcij,ijcm->nyxcm", win, kernel)  # channel = c * dm + m
        return out.reshape(out.shape[:3] + (-1,))
    return np.einsum("nyxcij,ijco->nyxo", win, kernel)


def _float_activation(y: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "relu6":
        return np.clip(y, 0, 6)
    return y


# -------------------------------------------------------------------- float
@_float_op("conv2d")
@_float_op("depthwise_conv2d")
def float_conv(layer, xs):
    y = _conv(xs[0].astype(np.float64), layer, layer.kernel.astype(np.float64))
    if layer.bias is not None:
        y = y + layer.bias
    return _float_activation(y, layer.activation).astype(np.float32)


@_float_op("fully_connected")
def float_fully_connected(layer, xs):
    y = xs[0].astype(np.float64) @ layer.kernel.astype(np.float64)
    if layer.bias is not None:
        y = y + layer.bias
    return _float_activation(y, layer.activation).astype(np.float32)


@_float_op("max_pool2d")
def float_max_pool(layer, xs):
    win = _windows(xs[0], layer.pool_size, layer.strides, (1, 1), layer.pads(), layer.output_shape[:2], -np.inf)
    return win.max(axis=(4, 5)).astype(np.float32)


@_float_op("avg_pool2d")
def float_avg_pool(layer, xs):
    win = _windows(xs[0].astype(np.float64), layer.pool_size, layer.strides, (1, 1), layer.pads(),
                   layer.output_shape[:2], 0.0)
    return (win.sum(axis=(4, 5)) / _valid_counts(layer)[None, :, :, None]).astype(np.float32)


@_float_op("mean")
def float_mean(layer, xs):
    return xs[0].astype(np.float64).mean(axis=(1, 2)).astype(np.float32)


@_float_op("add")
def float_add(layer, xs):
    return _float_activation(xs[0].astype(np.float64) + xs[1], layer.activation).astype(np.float32)


@_float_op("softmax")
def float_softmax(layer, xs):
    z = layer.beta * xs[0].astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@_float_op("pad")
def float_pad(layer, xs):
    return np.pad(xs[0], ((0, 0),) + tuple(layer.paddings), constant_values=0.0).astype(np.float32)


@_float_op("reshape")
def float_reshape(layer, xs):
    return xs[0].reshape((xs[0].shape[0],) + tuple(layer.output_shape))


# ---------------------------------------------------------------------- int8
def activation_range(graph: Graph, layer: Layer) -> tuple[int, int]:
    """The int8 clamp [act_min, act_max] of a layer's output, stored by quantize() on the tensor."""
    from .quantize import activation_range as _range

    return _range(graph.tensors[layer.output].quant, getattr(layer, "activation", "none"))


def _requantize_clamp(acc: np.ndarray, layer: Layer, graph: Graph) -> np.ndarray:
    """acc (int32 values, channel last) -> int8 output: per-channel requantize, + zero point, clamp."""
    rq = layer.requant
    out = fp.multiply_by_quantized_multiplier(acc, rq.multiplier, rq.shift)
    out = out + graph.tensors[layer.output].quant.zero_point
    lo, hi = activation_range(graph, layer)
    return fp.clamp(out, lo, hi).astype(np.int8)


def _input_offset(graph: Graph, layer: Layer, i: int = 0) -> int:
    return -graph.tensors[layer.inputs[i]].quant.zero_point


@_int_op("conv2d")
@_int_op("depthwise_conv2d")
def int_conv(layer, graph, xs):
    # TFLite layout -> Keras layout for the shared convolution core.
    if isinstance(layer, DepthwiseConv2D):
        kh, kw, cin, dm = layer.kernel.shape
        kernel = layer.qkernel.astype(np.int64).reshape(kh, kw, cin, dm)
    else:
        kernel = layer.qkernel.astype(np.int64).transpose(1, 2, 3, 0)
    acc = _conv(xs[0].astype(np.int64) + _input_offset(graph, layer), layer, kernel) + layer.qbias
    return _requantize_clamp(acc, layer, graph)


@_int_op("fully_connected")
def int_fully_connected(layer, graph, xs):
    acc = (xs[0].astype(np.int64) + _input_offset(graph, layer)) @ layer.qkernel.astype(np.int64).T + layer.qbias
    return _requantize_clamp(acc, layer, graph)


@_int_op("max_pool2d")
def int_max_pool(layer, graph, xs):
    win = _windows(xs[0].astype(np.int64), layer.pool_size, layer.strides, (1, 1), layer.pads(),
                   layer.output_shape[:2], -(1 << 40))
    lo, hi = activation_range(graph, layer)
    return fp.clamp(win.max(axis=(4, 5)), lo, hi).astype(np.int8)


@_int_op("avg_pool2d")
def int_avg_pool(layer, graph, xs):
    """TFLite reference: sum over in-image taps, divide by their count rounding half away from zero."""
    win = _windows(xs[0].astype(np.int64), layer.pool_size, layer.strides, (1, 1), layer.pads(),
                   layer.output_shape[:2], 0)
    acc = win.sum(axis=(4, 5))
    count = _valid_counts(layer)[None, :, :, None]
    avg = fp.rounded_divide(acc, count)
    lo, hi = activation_range(graph, layer)
    return fp.clamp(avg, lo, hi).astype(np.int8)


@_int_op("mean")
def int_mean(layer, graph, xs):
    """TFLM integer MEAN over H, W (reduce_common.cc EvalIntegerMean -> reference_ops::QuantizedMeanOrSum):
    the int32 sum minus input_zp * count, requantized by input_scale/output_scale with 1/count folded
    into the multiplier (:meth:`Mean.folded_requant`), + output_zp, clamped.  TFLM takes this path
    also when input and output quantization are identical (older TFLM had a plain sum/count path there).
    """
    in_zp = graph.tensors[layer.inputs[0]].quant.zero_point
    out_zp = graph.tensors[layer.output].quant.zero_point
    total = xs[0].astype(np.int64).sum(axis=(1, 2))
    multiplier, shift = layer.folded_requant()
    out = fp.multiply_by_quantized_multiplier(total - in_zp * layer.count, multiplier, shift) + out_zp
    return fp.clamp(out, -128, 127).astype(np.int8)


@_int_op("add")
def int_add(layer, graph, xs):
    """TFLite reference ADD: both inputs rescaled to a common 2^-20 grid, summed, requantized."""
    scaled = []
    for i, rq in enumerate((layer.input1_requant, layer.input2_requant)):
        shifted = (xs[i].astype(np.int64) + _input_offset(graph, layer, i)) * (1 << layer.left_shift)
        scaled.append(fp.multiply_by_quantized_multiplier(shifted, rq.multiplier, rq.shift))
    out = fp.multiply_by_quantized_multiplier(scaled[0] + scaled[1], layer.output_requant.multiplier,
                                              layer.output_requant.shift)
    out = out + graph.tensors[layer.output].quant.zero_point
    lo, hi = activation_range(graph, layer)
    return fp.clamp(out, lo, hi).astype(np.int8)


@_int_op("softmax")
def int_softmax(layer, graph, xs):
    """TFLite reference int8 Softmax (gemmlowp fixed-point exp, Q5.26 diffs, Q12.19 sum)."""
    scaled_diff_integer_bits, accumulation_integer_bits = 5, 12
    x = xs[0].astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= layer.diff_min
    rescaled = fp.saturating_rounding_doubling_high_mul(diff * (1 << layer.input_left_shift),
                                                        layer.input_multiplier)
    exp = fp.exp_on_negative_values(rescaled, scaled_diff_integer_bits)  # Q0.31
    exp_acc = fp.rounding_divide_by_pot(exp, accumulation_integer_bits)  # Rescale<12>
    sum_of_exps = fp.wrap_int32(np.where(valid, exp_acc, 0).sum(axis=-1, keepdims=True))
    shifted_scale, num_bits_over_unit = fp.get_reciprocal(sum_of_exps, accumulation_integer_bits)
    unsat = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(shifted_scale, exp),
                                      num_bits_over_unit + 31 - 8)
    out = fp.clamp(unsat - 128, -128, 127)
    return np.where(valid, out, -128).astype(np.int8)


@_int_op("pad")
def int_pad(layer, graph, xs):
    """TFLite PAD: the int8 ``value`` (the zero point, i.e. real 0) around the tensor."""
    return np.pad(xs[0], ((0, 0),) + tuple(layer.paddings), constant_values=layer.value).astype(np.int8)


@_int_op("reshape")
def int_reshape(layer, graph, xs):
    return xs[0].reshape((xs[0].shape[0],) + tuple(layer.output_shape))


# --------------------------------------------------------------------- runs
def _check_batch(graph: Graph, x: np.ndarray) -> np.ndarray:
    shape = graph.tensors[graph.input].shape
    x = np.asarray(x)
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape:
        raise ValueError(f"input of shape {x.shape}; the model takes (N,) + {shape} (NHWC, batch first)")
    return x


def run_float(graph: Graph, x: np.ndarray, all_tensors: bool = False):
    """Float forward pass.  x: float (N,)+input shape.  Returns the output, or every tensor by name."""
    values = {graph.input: _check_batch(graph, x).astype(np.float32)}
    for layer in graph.layers:
        values[layer.output] = FLOAT_OPS[layer.op](layer, [values[t] for t in layer.inputs])
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
        values[layer.output] = INT_OPS[layer.op](layer, graph, [values[t] for t in layer.inputs])
    return values if all_tensors else values[graph.output]
