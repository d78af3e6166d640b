"""Post-training int8 quantization (TFLite int8 spec): the ONLY place floats become integers.

* Activations: int8, per tensor, asymmetric; range from calibration min/max
  (always including 0), scale/zero point chosen as gemmlowp/TFLite do.
* Conv/depthwise/dense weights: int8 symmetric in [-127, 127], zero point 0, one
  scale per output channel.  Bias: int32 with scale input_scale * weight_scale[c].
* Every rescale is turned into a (Q31 multiplier, shift) pair here, once, with
  TFLite's QuantizeMultiplier; the simulator and the C templates only read them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np

from .errors import DataError, UserError
from .ir import (
    Add, AvgPool2D, Conv2D, DepthwiseConv2D, FullyConnected, Graph, Layer, MaxPool2D, Mean, Pad, QuantParams,
    Requant, Reshape, Softmax,
)

QMIN, QMAX = -128, 127


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    frexp split, round half away from zero, the 2^31 edge case moves into the
    shift, and shifts below -31 flush to (0, 0).  ``shift`` > 0 means left shift.
    """
    if not math.isfinite(real):
        raise UserError(f"rescale factor {real} is not finite (a tensor scale is zero, infinite or NaN)")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # std::round
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if not -(1 << 31) <= q_fixed < (1 << 31):
        raise UserError(f"multiplier {real} does not fit a Q31 value")
    return q_fixed, shift


def requant_for(scales: Iterable[float]) -> Requant:
    """Per-channel Requant from real effective scales (already computed in double precision)."""
    pairs = [quantize_multiplier(float(s)) for s in scales]
    return Requant(multiplier=np.array([m for m, _ in pairs], np.int32), shift=np.array([s for _, s in pairs], np.int32))


def choose_quant_params(rmin: float, rmax: float) -> QuantParams:
    """gemmlowp ChooseQuantizationParams for int8: range widened to include 0, zero point nudged."""
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    if rmax - rmin < 1e-9:
        return QuantParams(1.0 / 255.0, 0)  # constant-zero tensor: any scale is exact
    scale = float(np.float32((rmax - rmin) / (QMAX - QMIN)))
    zp_from_min = QMIN - rmin / scale
    zp_from_max = QMAX - rmax / scale
    zp_err_min = abs(QMIN) + abs(rmin / scale)
    zp_err_max = abs(QMAX) + abs(rmax / scale)
    zp = zp_from_min if zp_err_min < zp_err_max else zp_from_max
    return QuantParams(scale, int(min(max(round(zp), QMIN), QMAX)))


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_tensor(x: np.ndarray, quant: QuantParams) -> np.ndarray:
    """Float -> int8 with real = scale * (q - zero_point) (round half away from zero, saturate)."""
    q = _round_half_away(np.asarray(x, np.float64) / quant.scale) + quant.zero_point
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def dequantize_tensor(q: np.ndarray, quant: QuantParams) -> np.ndarray:
    return (np.asarray(q, np.float64) - quant.zero_point) * quant.scale


def activation_range(quant: QuantParams, activation: str) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized: int8 clamp for a fused activation."""
    def quantize(f: float) -> int:  # zero_point + TfLiteRound(f / scale), float32 division as TFLite
        return quant.zero_point + int(_round_half_away(np.float32(f) / np.float32(quant.scale)))

    if activation == "relu":
        return max(QMIN, quantize(0.0)), QMAX
    if activation == "relu6":
        return max(QMIN, quantize(0.0)), min(QMAX, quantize(6.0))
    return QMIN, QMAX


# --------------------------------------------------------------- weights
def _per_channel_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """(int8 kernel in TFLite layout, float32 scales per output channel)."""
    k = layer.kernel.astype(np.float64)
    if isinstance(layer, DepthwiseConv2D):
        kh, kw, cin, dm = k.shape
        oc_first = k.reshape(kh, kw, cin * dm).transpose(2, 0, 1)  # (C_out, kh, kw)
    elif isinstance(layer, Conv2D):
        oc_first = k.transpose(3, 0, 1, 2)  # OHWI
    else:
        oc_first = k.T  # (out, in)
    flat = oc_first.reshape(oc_first.shape[0], -1)
    max_abs = np.abs(flat).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / 127.0, 1.0 / 127.0).astype(np.float32)
    shape = (-1,) + (1,) * (oc_first.ndim - 1)
    q = np.clip(_round_half_away(oc_first / scales.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    if isinstance(layer, DepthwiseConv2D):
        q = q.transpose(1, 2, 0)[None]  # (1, kh, kw, C_out)
    return np.ascontiguousarray(q), scales


def _quantize_weighted(layer, in_q: QuantParams, out_q: QuantParams):
    qkernel, w_scales = _per_channel_weights(layer)
    bias_scales = np.float64(in_q.scale) * w_scales.astype(np.float64)
    bias = np.zeros(len(w_scales)) if layer.bias is None else layer.bias.astype(np.float64)
    qbias = np.clip(_round_half_away(bias / bias_scales), -(2**31), 2**31 - 1).astype(np.int32)
    effective = np.float64(in_q.scale) * w_scales.astype(np.float64) / np.float64(out_q.scale)
    return dataclasses.replace(layer, qkernel=qkernel, qbias=qbias, requant=requant_for(effective))


def _quantize_add(layer: Add, q1: QuantParams, q2: QuantParams, out_q: QuantParams) -> Add:
    """TFLite ADD parameters: inputs rescaled to twice the larger input scale over 2^left_shift."""
    twice_max_input_scale = 2.0 * max(q1.scale, q2.scale)
    real_out = twice_max_input_scale / ((1 << layer.left_shift) * out_q.scale)
    return dataclasses.replace(layer, input1_requant=requant_for([q1.scale / twice_max_input_scale]),
                               input2_requant=requant_for([q2.scale / twice_max_input_scale]),
                               output_requant=requant_for([real_out]))


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius for int8 (5 integer bits).

    Returns (input_multiplier, input_left_shift, diff_min).
    """
    scaled_diff_integer_bits = 5
    real = min(beta * input_scale * (1 << (31 - scaled_diff_integer_bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise UserError(f"softmax input scale {input_scale:g} too small: TFLite's int8 softmax needs "
                        f"beta * input_scale >= 2^-27")
    max_input_rescaled = (1.0 * ((1 << scaled_diff_integer_bits) - 1) * (1 << (31 - scaled_diff_integer_bits))
                          / (1 << left_shift))
    return multiplier, left_shift, -int(math.floor(max_input_rescaled))


SOFTMAX_OUTPUT = QuantParams(1.0 / 256.0, -128)


# ------------------------------------------------------------ calibration
def calibrate(graph: Graph, calibration: np.ndarray, batch_size: int = 64,
              progress: bool = True) -> dict[str, tuple[float, float]]:
    """Float min/max of every tensor over a representative NHWC float array (with a progress bar)."""
    from tqdm.auto import tqdm

    from .simulate import run_float

    from .arrays import calibration_data

    x = calibration_data(graph, calibration)
    ranges: dict[str, tuple[float, float]] = {}
    starts = range(0, len(x), batch_size)
    # progress: a bar on a terminal only (disable=None), so logs and one-line errors stay clean
    for start in tqdm(starts, desc="calibrating", unit="batch", disable=None if progress else True, leave=False):
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by layer
            values = run_float(graph, x[start:start + batch_size], all_tensors=True)
        for name, v in values.items():
            lo, hi = float(v.min()), float(v.max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
    for name, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi)):
            producer = graph.producer(name)
            where = f"layer '{producer.name}'" if producer is not None else f"the input '{name}'"
            raise DataError(f"{where}: float values overflow (range [{lo:g}, {hi:g}]) on the calibration data; "
                            f"is the calibration data scaled like the training data (max |x| "
                            f"{float(np.abs(x).max()):.3g})?")
    return ranges


def quantize(graph: Graph, calibration: np.ndarray, batch_size: int = 64, progress: bool = True) -> Graph:
    """Quantize a float graph with sepgen's own post-training int8 quantizer."""
    if graph.quantizer != "none":
        raise UserError(f"model '{graph.name}' is already quantized ({graph.quantizer})")
    ranges = calibrate(graph, calibration, batch_size, progress)
    quants: dict[str, QuantParams] = {graph.input: choose_quant_params(*ranges[graph.input])}
    layers: list[Layer] = []
    for layer in graph.layers:
        in_q = quants[layer.inputs[0]]
        if isinstance(layer, (MaxPool2D, AvgPool2D, Reshape, Pad)):
            out_q = in_q  # TFLite requires identical quantization through these ops
            if isinstance(layer, Pad):
                layer = dataclasses.replace(layer, value=in_q.zero_point)  # pads with real 0
        elif isinstance(layer, Softmax):
            out_q = SOFTMAX_OUTPUT
            m, s, d = softmax_params(layer.beta, in_q.scale)
            layer = dataclasses.replace(layer, input_multiplier=m, input_left_shift=s, diff_min=d)
        else:
            out_q = choose_quant_params(*ranges[layer.output])
        if isinstance(layer, (Conv2D, DepthwiseConv2D, FullyConnected)):
            layer = _quantize_weighted(layer, in_q, out_q)
        elif isinstance(layer, Mean):  # TFLite MEAN: rescale input_scale / output_scale, then divide
            layer = dataclasses.replace(layer, requant=requant_for([np.float64(in_q.scale) / np.float64(out_q.scale)]))
        elif isinstance(layer, Add):
            layer = _quantize_add(layer, in_q, quants[layer.inputs[1]], out_q)
        quants[layer.output] = out_q
        layers.append(layer)
    tensors = {name: dataclasses.replace(spec, quant=quants[name]) for name, spec in graph.tensors.items()}
    return graph.replace_layers(layers, tensors=tensors, quantizer="sepgen")
