"""What several ops share: sliding windows, the float activation, requantize-and-clamp, weighted layers.

The integer arithmetic itself is only in :mod:`sepgen.fixedpoint`; the multipliers and shifts are only
made in :mod:`sepgen.quantize`.  This module combines them the way TFLite's reference kernels do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Layer, QuantParams, Requant, conv_output_size
from ..quantize import activation_range, effective_scales, quantize_bias, quantize_weights_per_channel, requant_for

LIMIT = 1 << 31


# ------------------------------------------------------------------ windows
def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], dilation: tuple[int, int],
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


def float_activation(y: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "relu6":
        return np.clip(y, 0, 6)
    return y


def input_offset(graph: Graph, layer: Layer, i: int = 0) -> int:
    """TFLite's input_offset: minus the input tensor's zero point."""
    return -graph.tensors[layer.inputs[i]].quant.zero_point


def fold_input_offset(qbias: np.ndarray, taps: np.ndarray, offset: int) -> dict | None:
    """The bias with the input offset folded in, for kernels whose taps outside the image read the input zero
    point: ``taps`` (C, n) each channel's weights over its whole window; bias'[c] = bias[c] + offset * sum_k
    taps[c][k], so acc = bias'[c] + sum_k taps[c][k] * x[k] is TFLite's bias[c] + sum_k taps[c][k] * (x[k] +
    offset).  Every partial sum (any order) is within |bias'[c]| + sum_k |taps[c][k]| * 128 ("partial_bound");
    None if that could leave int32."""
    w = np.asarray(taps, dtype=np.int64)
    folded = qbias.astype(np.int64) + offset * w.sum(axis=1)
    partial = int((np.abs(folded) + np.abs(w).sum(axis=1) * 128).max())
    if partial >= LIMIT:
        return None
    return {"folded_bias": folded, "partial_bound": partial}


def clamp_range(graph: Graph, layer: Layer) -> tuple[int, int]:
    """The int8 clamp [act_min, act_max] of a layer's output (fused activation on the output quantization)."""
    return activation_range(graph.tensors[layer.output].quant, getattr(layer, "activation", "none"))


def requantize_clamp(acc: np.ndarray, layer: Layer, graph: Graph, requant: Requant) -> np.ndarray:
    """acc (int32 values, channel last) -> int8 output: per-channel requantize, + zero point, clamp."""
    out = fp.multiply_by_quantized_multiplier(acc, requant.multiplier, requant.shift)
    out = out + graph.tensors[layer.output].quant.zero_point
    lo, hi = clamp_range(graph, layer)
    return fp.clamp(out, lo, hi).astype(np.int8)


def max_input_magnitude(graph: Graph, tensor: str) -> int:
    """max |x + input_offset| over int8 x."""
    zp = graph.tensors[tensor].quant.zero_point
    return max(abs(-128 - zp), abs(127 - zp))


def pair(value, what: str) -> tuple[int, int]:
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{what}: expected 2 values, got {value}")
    return value  # type: ignore[return-value]


def need_hwc(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{what} needs an (H, W, C) input, got {shape}")
    return shape  # type: ignore[return-value]


# ------------------------------------------------------------ weighted ops
@dataclass(frozen=True, eq=False)
class WeightedLayer(Layer):
    """Conv/depthwise/dense: float kernel + bias; int8 per-channel weights, int32 bias and a Requant."""

    kernel: np.ndarray = field(default=None)  # float32, Keras layout
    bias: np.ndarray | None = None  # float32 (out,) or None
    activation: str = "none"
    #: Parameters of layers folded into this one (BatchNormalization), less the bias the fold created,
    #: so that params() still counts what Keras count_params() counted before folding.
    folded_params: int = 0
    # Filled by quantized():
    qkernel: np.ndarray | None = None  # int8, TFLite layout
    qbias: np.ndarray | None = None  # int32 (out,) (zeros when the float layer had no bias)
    requant: Requant | None = None

    @property
    def out_channels(self) -> int:
        return self.output_shape[-1]

    def params(self) -> int:
        return int(self.kernel.size) + (0 if self.bias is None else int(self.bias.size)) + self.folded_params

    def weight_bytes(self) -> int:
        """int8 kernel + int32 bias (if any) + per channel an int32 multiplier and an int8 shift."""
        bias = 0 if self.bias is None else 4 * self.out_channels
        return int(self.kernel.size) + bias + 5 * self.out_channels

    def output_channels_first(self, kernel: np.ndarray) -> np.ndarray:
        """The float kernel as (C_out, ...) rows, one per output channel (per-channel weight scales)."""
        raise NotImplementedError

    def tflite_kernel(self, rows: np.ndarray) -> np.ndarray:
        """int8 rows (C_out, ...) -> the TFLite layout stored in ``qkernel``."""
        return rows

    def quantized(self, input_quants: list[QuantParams], output_quant: QuantParams) -> "WeightedLayer":
        """int8 symmetric per-channel weights in [-127, 127], int32 bias at input_scale * weight_scale[c],
        Requant of double(input_scale) * double(weight_scale[c]) / double(output_scale)."""
        import dataclasses

        in_q = input_quants[0]
        q, scales = quantize_weights_per_channel(self.output_channels_first(self.kernel.astype(np.float64)))
        effective = effective_scales(in_q.scale, scales, output_quant.scale, len(scales))
        return dataclasses.replace(self, qkernel=np.ascontiguousarray(self.tflite_kernel(q)),
                                   qbias=quantize_bias(self.bias, in_q.scale, scales), requant=requant_for(effective))

    def channel_weight_sums(self) -> np.ndarray:
        """sum |w| over each output channel's int8 weights."""
        w = np.abs(self.qkernel.astype(np.int64))
        return w.reshape(w.shape[0], -1).sum(axis=1)

    def accumulator_bound(self, graph: Graph) -> int:
        """|acc| <= |bias[c]| + sum |w[c]| * max|x + input_offset|, then shifted left by max(shift, 0)."""
        acc = self.channel_weight_sums() * max_input_magnitude(graph, self.inputs[0]) \
            + np.abs(self.qbias.astype(np.int64))
        shifts = np.broadcast_to(self.requant.shift, acc.shape)
        # Python integers: acc << shift can exceed int64 for a file's extreme shift.
        return max(int(a) << max(int(sh), 0) for a, sh in zip(acc.tolist(), shifts.tolist()))


@dataclass(frozen=True, eq=False)
class SpatialLayer(WeightedLayer):
    """A convolution over H and W (conv2d, depthwise_conv2d)."""

    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "valid"

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.kernel.shape[0]), int(self.kernel.shape[1])

    def pads(self) -> tuple[int, int]:
        """(pad_top, pad_left) in input pixels."""
        (kh, kw), (h, w) = self.kernel_size, self.input_shape[:2]
        return (conv_output_size(h, kh, self.strides[0], self.dilation[0], self.padding)[1],
                conv_output_size(w, kw, self.strides[1], self.dilation[1], self.padding)[1])

    @staticmethod
    def output_channels(kernel_shape: tuple[int, ...]) -> int:
        """Output channels for a float kernel of this shape (Keras layout)."""
        raise NotImplementedError

    def macs(self) -> int:
        """out_h * out_w * (kh * kw * C_in * C_out) for conv, * (kh * kw * C_in * dm) for depthwise: the
        kernel's size in both Keras layouts."""
        return int(self.output_shape[0] * self.output_shape[1] * self.kernel.size)

    @classmethod
    def infer_shape(cls, input_shapes, kernel, strides=(1, 1), dilation=(1, 1), padding="valid", **_):
        shape = np.shape(kernel)
        if len(shape) != 4 or shape[2] != input_shapes[0][-1]:
            raise ValueError(f"kernel shape {shape} for {input_shapes[0][-1]} input channels")
        return cls.spatial_shape(input_shapes[0], shape[:2], strides, dilation, padding, cls.output_channels(shape))

    @classmethod
    def spatial_shape(cls, input_shape, kernel_hw, strides, dilation, padding, channels) -> tuple[int, int, int]:
        h, w, _ = need_hwc(tuple(input_shape), cls.op)
        (kh, kw), strides, dilation = kernel_hw, pair(strides, "strides"), pair(dilation, "dilation")
        if padding not in ("same", "valid"):
            raise ValueError(f"padding '{padding}' (supported: same, valid)")
        if max(strides) > 1 and max(dilation) > 1:
            raise ValueError(f"strides {strides} with dilation {dilation}")
        return (conv_output_size(h, kh, strides[0], dilation[0], padding)[0],
                conv_output_size(w, kw, strides[1], dilation[1], padding)[0], channels)

    def convolve(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """The convolution core on offset-corrected inputs (pad taps contribute 0), Keras-layout kernel."""
        raise NotImplementedError

    def run_float(self, xs):
        y = self.convolve(xs[0].astype(np.float64), self.kernel.astype(np.float64))
        if self.bias is not None:
            y = y + self.bias
        return float_activation(y, self.activation).astype(np.float32)

    def keras_int_kernel(self) -> np.ndarray:
        """``qkernel`` (TFLite layout) in the Keras layout of ``kernel``, as int64."""
        raise NotImplementedError

    def run_int8(self, graph, xs):
        acc = self.convolve(xs[0].astype(np.int64) + input_offset(graph, self), self.keras_int_kernel()) + self.qbias
        return requantize_clamp(acc, self, graph, self.requant)


# ------------------------------------------------------ kernel-variant specialisation (generation time)
def right_shift_requant(requant: Requant, acc_bound: int) -> dict | None:
    """The requantization specialised for channels whose shift is a right shift, or None.

    With a multiplier >= 0 and a shift e = -shift >= 1 the kernels requantize the doubled accumulator
    2 * acc with one rounding high multiply-add and a shift (:func:`sepgen.fixedpoint.requantize_right_shift`,
    or :func:`~sepgen.fixedpoint.requantize_floor` under a clamp whose lower bound is >= the zero point),
    no run-time sign tests.  Exact when no int32 value overflows: |2 * acc| < 2^31 and
    |(2 zp + 1) * 2^(e-1)| + |acc| + 1 < 2^31 for any int8 zero point (|2 zp + 1| <= 257), with
    |acc| <= ``acc_bound``.
    Returns {"right_shift": per-channel e (ints), "uniform": e if every channel shares it else None}.
    """
    shifts = np.asarray(requant.shift).astype(np.int64).ravel()
    multipliers = np.asarray(requant.multiplier).astype(np.int64).ravel()
    if shifts.size == 0 or shifts.max() > -1 or multipliers.min() < 0:
        return None
    right = -shifts
    if 2 * acc_bound >= LIMIT or (257 << int(right.max() - 1)) + acc_bound + 1 >= LIMIT:
        return None
    uniform = int(right[0]) if (right == right[0]).all() else None
    return {"right_shift": [int(v) for v in right], "uniform": uniform}


def host_requant(requant: Requant, acc_bound: int, zero_point: int, floor: bool) -> dict | None:
    """The host kernels' requantization constants: :func:`right_shift_requant` (None: the general form), plus, for
    the floor form (``floor``: the clamp's lower bound is >= the zero point), per channel the int64 multiplier and
    addend of :func:`sepgen.fixedpoint.scaled_requant_constants` that give every channel one shift ``shift``
    (``scaled``; None where some |acc| * M + |A| could reach 2^63 for |acc| <= ``acc_bound``)."""
    rq = right_shift_requant(requant, acc_bound)
    if rq is None:
        return None
    scaled = None
    if floor:
        right = rq["right_shift"]
        multipliers = np.broadcast_to(np.asarray(requant.multiplier, dtype=np.int64), (len(right),)).tolist()
        common = max(right)
        pairs = [fp.scaled_requant_constants(int(m), e, zero_point, common) for m, e in zip(multipliers, right)]
        if all(m2 < (1 << 62) and acc_bound * m2 + abs(addend) < (1 << 63) for m2, addend in pairs):
            scaled = {"multiplier": [m2 for m2, _ in pairs], "addend": [a for _, a in pairs], "shift": 32 + common}
    return {**rq, "scaled": scaled}


def host_floor(graph: Graph, layer: Layer) -> tuple[int, bool]:
    """(output zero point, whether the floor form is exact: the clamp's lower bound is >= the zero point)."""
    zp = graph.tensors[layer.output].quant.zero_point
    return zp, clamp_range(graph, layer)[0] >= zp
