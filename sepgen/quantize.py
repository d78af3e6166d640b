"""Post-training int8 quantization (TFLite int8 spec): the ONLY place floats become integers.

Every float -> integer conversion is a function here (scales and zero points, weights, biases,
multiplier/shift pairs); each op's :meth:`~sepgen.ir.Layer.quantized` only decides which of them
its parameters need.

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
from .ir import Graph, Layer, QuantParams, Requant

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


def effective_scales(input_scale: float, weight_scales: np.ndarray, output_scale: float, channels: int,
                     per_tensor_fc: bool = False) -> np.ndarray:
    """Real per-channel rescale of a conv/depthwise/dense layer, as TFLM's Prepare computes it.

    Conv/depthwise (PopulateConvolutionQuantizationParams) and per-channel FC:
    double(input_scale) * double(weight_scale[c]) / double(output_scale).  Per-tensor FC
    (GetQuantizedConvolutionMultipler): input_scale * weight_scale in float32 first, then divided in double.
    """
    in_s, out_s = np.float64(np.float32(input_scale)), np.float64(np.float32(output_scale))
    weight_scales = np.asarray(weight_scales)
    if per_tensor_fc:
        product = np.float64(np.float32(input_scale) * np.float32(weight_scales[0]))
        return np.full(channels, product / out_s)
    return in_s * np.broadcast_to(weight_scales.astype(np.float64), (channels,)) / out_s


def choose_quant_params(rmin: float, rmax: float) -> QuantParams:
    """gemmlowp ChooseQuantizationParams for int8: range widened to include 0, zero point nudged."""
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    if rmax - rmin < 1e-9:
        return QuantParams(1.0 / 255.0, 0)  # constant-zero tensor: any scale is exact
    scale = float(np.float32((rmax - rmin) / (QMAX - QMIN)))
    return QuantParams(scale, _nudged_zero_point(rmin, rmax, scale))


def _nudged_zero_point(rmin: float, rmax: float, scale: float) -> int:
    """gemmlowp's zero point for a range that includes 0 at a given scale: from the end with the smaller error."""
    zp_from_min = QMIN - rmin / scale
    zp_from_max = QMAX - rmax / scale
    zp_err_min = abs(QMIN) + abs(rmin / scale)
    zp_err_max = abs(QMAX) + abs(rmax / scale)
    zp = zp_from_min if zp_err_min < zp_err_max else zp_from_max
    return int(min(max(round(zp), QMIN), QMAX))


# ------------------------------------------------- Rescaling folded into the input quantization
def rescaling_input_quant(rmin: float, rmax: float, scale: float, offset: float) -> QuantParams:
    """The raw model input's quantization when its first layer, y = ``scale`` * x + ``offset`` (scalars,
    scale > 0), is folded into it: the int8 bytes stay the same and the next layer reads them as y with
    :func:`rescaled_quant` (scale S = scale * S_x, zero point Z = Z_x - offset / S).

    Exact when offset / S is an integer n: then quantizing x with (S_x, Z_x) gives exactly the bytes that
    quantizing y with (S, Z) gives (in real arithmetic; a value exactly halfway between two steps may round
    either way in floating point).  The raw range [rmin, rmax] is widened to include 0 and -offset / scale
    (the raw value that rescales to 0), so that both zero points are int8; its gemmlowp scale S0 is then
    raised to the nearest S_x >= S0 that makes n = offset / (scale * S_x) a whole number (by less than a
    factor 2, by 1/127 for images 0..255 with Rescaling(1/127.5, -1)).  When the offset is smaller than one
    raw step (|offset / scale| < S0) no such S_x exists: S0 is kept and n rounds to the nearest integer, so the
    rescaled input is off by at most half a step of S.
    """
    scale, offset = float(scale), float(offset)
    if not (math.isfinite(scale) and math.isfinite(offset) and scale > 0):
        raise UserError(f"a folded Rescaling needs a finite scale > 0 and a finite offset, got {scale}, {offset}")
    zero = -offset / scale  # the raw value that rescales to 0
    rmin, rmax = min(float(rmin), 0.0, zero), max(float(rmax), 0.0, zero)
    if rmax - rmin < 1e-9:
        return QuantParams(1.0 / 255.0, 0)  # constant-zero input (offset 0): any scale is exact
    s_x = float(np.float32((rmax - rmin) / (QMAX - QMIN)))
    steps = abs(zero) / s_x  # |n| at the gemmlowp scale
    if steps >= 1.0:  # the largest |n| <= steps; the 1e-6 absorbs float noise of an exact quotient
        s_x = max(s_x, float(np.float32(abs(zero) / math.floor(steps + 1e-6))))
    n = _offset_steps(float(np.float32(scale * s_x)), offset)  # as rescaled_quant computes it
    zp = _nudged_zero_point(rmin, rmax, s_x)
    return QuantParams(s_x, min(max(zp, QMIN + n, QMIN), QMAX + n, QMAX))  # Z_x and Z_x - n both int8


def _offset_steps(rescaled_scale: float, offset: float) -> int:
    """n = offset / S rounded to the nearest integer (half away from zero)."""
    return int(round_half_away(np.float64(offset) / np.float64(rescaled_scale)))


def rescaled_quant(raw: QuantParams, scale: float, offset: float) -> QuantParams:
    """The quantization of y = ``scale`` * x + ``offset`` that reads x's int8 bytes unchanged: S = scale * S_x
    (float32), Z = Z_x - n with n = offset / S rounded (a whole number for a raw quantization chosen by
    :func:`rescaling_input_quant`).  UserError when Z leaves int8 (the raw quantization was chosen elsewhere)."""
    s = float(np.float32(float(scale) * raw.scale))
    zp = raw.zero_point - _offset_steps(s, offset)
    if not (s > 0 and QMIN <= zp <= QMAX):
        raise UserError(f"a Rescaling({scale:g}, {offset:g}) cannot be folded into the quantization "
                        f"(scale {raw.scale:g}, zero point {raw.zero_point}): zero point {zp} is not int8")
    return QuantParams(s, zp)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (TFLite's TfLiteRound / std::round)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_tensor(x: np.ndarray, quant: QuantParams) -> np.ndarray:
    """Float -> int8 with real = scale * (q - zero_point) (round half away from zero, saturate)."""
    q = round_half_away(np.asarray(x, np.float64) / quant.scale) + quant.zero_point
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def quantize_weights_per_channel(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights, one scale per output channel: (int8 rows, float32 scales).

    ``rows`` is the float kernel as (C_out, ...); scale = max|w| / 127 (1/127 for an all-zero channel);
    values rounded half away from zero and clipped to [-127, 127] (TFLite int8 weight spec).
    """
    flat = rows.reshape(rows.shape[0], -1)
    max_abs = np.abs(flat).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / 127.0, 1.0 / 127.0).astype(np.float32)
    shape = (-1,) + (1,) * (rows.ndim - 1)
    q = np.clip(round_half_away(rows / scales.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def quantize_bias(bias: np.ndarray | None, input_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """int32 bias at scale input_scale * weight_scale[c] (zeros when there is no bias), saturated."""
    bias_scales = np.float64(input_scale) * weight_scales.astype(np.float64)
    values = np.zeros(len(weight_scales)) if bias is None else bias.astype(np.float64)
    return np.clip(round_half_away(values / bias_scales), -(2**31), 2**31 - 1).astype(np.int32)


def dequantize_tensor(q: np.ndarray, quant: QuantParams) -> np.ndarray:
    return (np.asarray(q, np.float64) - quant.zero_point) * quant.scale


def activation_range(quant: QuantParams, activation: str) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized: int8 clamp for a fused activation."""
    def quantize(f: float) -> int:  # zero_point + TfLiteRound(f / scale), float32 division as TFLite
        return quant.zero_point + int(round_half_away(np.float32(f) / np.float32(quant.scale)))

    if activation == "relu":
        return max(QMIN, quantize(0.0)), QMAX
    if activation == "relu6":
        return max(QMIN, quantize(0.0)), min(QMAX, quantize(6.0))
    return QMIN, QMAX


# ------------------------------------------------------------ calibration
def calibrate(graph: Graph, calibration: np.ndarray, batch_size: int = 64,
              progress: bool = True) -> dict[str, tuple[float, float]]:
    """Float min/max of every tensor over a representative NHWC float array (with a progress bar)."""
    from tqdm.auto import tqdm

    from .arrays import calibration_data

    x = calibration_data(graph, calibration)
    ranges: dict[str, tuple[float, float]] = {}
    starts = range(0, len(x), batch_size)
    # progress: a bar on a terminal only (disable=None), so logs and one-line errors stay clean
    for start in tqdm(starts, desc="calibrating", unit="batch", disable=None if progress else True, leave=False):
        values = {graph.input: x[start:start + batch_size]}
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by layer
            for layer in graph.layers:  # each op's own float function (as sepgen.simulate.run_float)
                values[layer.output] = layer.run_float([values[t] for t in layer.inputs])
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
    """Quantize a float graph with sepgen's own post-training int8 quantizer.

    Each tensor gets the quantization chosen from its calibrated range unless its op says otherwise
    (:meth:`sepgen.ir.Layer.output_quant`: pooling, pad and reshape keep their input's, softmax has
    TFLite's fixed one); each op then fills in its integer parameters (:meth:`sepgen.ir.Layer.quantized`).
    """
    if graph.quantizer != "none":
        raise UserError(f"model '{graph.name}' is already quantized ({graph.quantizer})")
    ranges = calibrate(graph, calibration, batch_size, progress)
    quants: dict[str, QuantParams] = {graph.input: _input_quant(graph, ranges[graph.input])}
    layers: list[Layer] = []
    for layer in graph.layers:
        in_qs = [quants[t] for t in layer.inputs]
        out_q = layer.output_quant(in_qs, choose_quant_params(*ranges[layer.output]))
        layers.append(layer.quantized(in_qs, out_q))
        quants[layer.output] = out_q
    tensors = {name: dataclasses.replace(spec, quant=quants[name]) for name, spec in graph.tensors.items()}
    return graph.replace_layers(layers, tensors=tensors, quantizer="sepgen")


def _input_quant(graph: Graph, calibrated: tuple[float, float]) -> QuantParams:
    """The model input's quantization: the one its readers ask for (:meth:`sepgen.ir.Layer.model_input_quant`,
    e.g. a folded Rescaling), else the one chosen from its calibrated range."""
    asked = {q for layer in graph.consumers(graph.input) if (q := layer.model_input_quant(*calibrated)) is not None}
    if len(asked) > 1:
        raise UserError(f"model '{graph.name}': its input is read by layers that need different quantizations")
    return asked.pop() if asked else choose_quant_params(*calibrated)


# ------------------------------------------------------- fixed-output ops
#: The int8 output quantization TFLite fixes for SOFTMAX and LOGISTIC (probabilities in [0, 1)).
PROBABILITY_QUANT = QuantParams(1.0 / 256.0, -128)


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius for int8.  (input_multiplier, left_shift, diff_min)."""
    from . import fixedpoint as fp

    bits = fp.SOFTMAX_DIFF_INTEGER_BITS
    real = min(beta * input_scale * (1 << (31 - bits)), (1 << 31) - 1.0)
    if real <= 1.0:  # TFLite's QuantizeMultiplierGreaterThanOne (TFLM aborts the process below it)
        raise UserError(f"softmax input scale {input_scale:g} too small: TFLite's int8 softmax needs "
                        f"beta * input_scale > 2^-{31 - bits}")
    multiplier, left_shift = quantize_multiplier(real)
    max_input_rescaled = 1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    return multiplier, left_shift, -int(math.floor(max_input_rescaled))


def logistic_params(input_scale: float) -> tuple[int, int, int]:
    """TFLM's int8 Logistic Prepare: (input_multiplier, input_left_shift, input_range_radius).

    frexp(double(input_scale) * 2^27) = (q, left_shift), multiplier = round(q * 2^31), radius =
    floor(15 * 2^27 / 2^left_shift) (CalculateInputRadius with 4 integer bits)."""
    from . import fixedpoint as fp

    bits = fp.LOGISTIC_INPUT_INTEGER_BITS
    q, left_shift = math.frexp(float(np.float32(input_scale)) * float(1 << (31 - bits)))
    multiplier = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound (q > 0)
    radius = math.floor(((1 << bits) - 1) * float(1 << (31 - bits)) / float(2.0 ** left_shift))
    return multiplier, left_shift, radius


def down_scale_int32_to_int16_multiplier(multiplier: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier: a Q31 multiplier (>= 0) rounded to Q15, saturating at 2^15 - 1."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (int(multiplier) + (1 << 15)) >> 16


def hard_swish_params(input_scale: float, output_scale: float) -> dict[str, int]:
    """TFLM HardSwishPrepare: the hi-res input scale input_scale / 2^7, then in float32 its ratios to the output
    scale and to the relu-ish scale 3 / 2^15, each through QuantizeMultiplier and down to a Q15 multiplier.
    Returns {output_multiplier, output_exponent, reluish_multiplier, reluish_exponent} (exponents: + = left)."""
    from . import fixedpoint as fp

    hires = np.float32(1.0 / (1 << fp.HARD_SWISH_HIRES_SHIFT)) * np.float32(input_scale)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        output_real = np.float64(hires / np.float32(output_scale))
        reluish_real = np.float64(hires / np.float32(3.0 / 32768.0))
    out_m, out_e = quantize_multiplier(float(output_real))
    rel_m, rel_e = quantize_multiplier(float(reluish_real))
    return {"output_multiplier": down_scale_int32_to_int16_multiplier(out_m), "output_exponent": out_e,
            "reluish_multiplier": down_scale_int32_to_int16_multiplier(rel_m), "reluish_exponent": rel_e}


def resize_nearest_indices(input_size: int, output_size: int, align_corners: bool = False,
                           half_pixel_centers: bool = False) -> tuple[int, ...]:
    """TFLite's GetNearestNeighbor for every output index of one axis: the input index it copies, computed in
    float32 as TFLM does (scale = in / out, or (in - 1) / (out - 1) with align_corners; + 0.5 with half-pixel
    centers; floor, or round with align_corners; clamped to the input)."""
    if align_corners and output_size > 1:
        scale = np.float32(input_size - 1) / np.float32(output_size - 1)
    else:
        scale = np.float32(input_size) / np.float32(output_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    indices = []
    for out in range(output_size):
        value = (np.float32(out) + offset) * scale
        index = int(round_half_away(np.asarray(value))) if align_corners else int(np.floor(value))
        index = min(index, input_size - 1)
        indices.append(max(index, 0) if half_pixel_centers else index)
    return tuple(indices)
