"""The quantizer: TFLite's multiplier split, activation ranges, weights, agreement with float."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepgen.frontends.builder import GraphBuilder
from sepgen.ir import QuantParams
from sepgen.ops import softmax_params
from sepgen.errors import UserError
from sepgen.quantize import (activation_range, choose_quant_params, quantize, quantize_multiplier, quantize_tensor,
                             rescaled_quant, rescaling_input_quant)
from sepgen.evaluate import agreement
from util import rand


@pytest.mark.parametrize("real", [0.5, 0.75, 1e-3, 0.9999999999, 1.5, 3.0, 2.0**-20, 0.3333333])
def test_quantize_multiplier_reconstructs(real):
    m, shift = quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31)
    assert math.isclose(m * 2.0 ** (shift - 31), real, rel_tol=2**-30)


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    # q rounds up to exactly 2^31: moved into the shift
    assert quantize_multiplier(1.0 - 2.0**-33) == (1 << 30, 1)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shift < -31 flushes to zero
    assert quantize_multiplier(2.0**-31)[1] == -30


def test_choose_quant_params_includes_zero_and_relu():
    q = choose_quant_params(0.0, 6.0)
    assert q.zero_point == -128 and math.isclose(q.scale, 6 / 255, rel_tol=1e-6)
    q = choose_quant_params(-1.0, 1.0)
    assert abs(q.zero_point) <= 1
    q = choose_quant_params(2.0, 3.0)  # widened to include 0
    assert q.zero_point == -128
    assert choose_quant_params(-5.0, -1.0).zero_point == 127


@pytest.mark.parametrize("rmin,rmax,scale,offset", [
    (0, 255, 1 / 255, 0.0), (0, 255, 1 / 127.5, -1.0), (0, 255, 1 / 255, -0.5), (0, 255, 2.0, 3.0),
    (-3.0, 3.0, 0.25, 0.5), (-3.0, 3.0, 10.0, -0.7), (0, 1023, 1 / 512, -1.0), (5.0, 9.0, 1.0, -7.0),
    (-0.5, 0.5, 3.0, 40.0),  # the raw value that rescales to 0 (-13.3) lies outside the data: the range grows
])
def test_rescaling_folded_into_the_input_quantization_is_exact(rmin, rmax, scale, offset):
    """The raw input's quantization for a folded Rescaling: both zero points int8, the data range covered, and
    quantizing raw values gives exactly the bytes that quantizing the rescaled values gives."""
    raw = rescaling_input_quant(rmin, rmax, scale, offset)
    y = rescaled_quant(raw, scale, offset)
    assert -128 <= raw.zero_point <= 127 and -128 <= y.zero_point <= 127
    # the data range is covered (up to the half step gemmlowp's zero-point nudge may cut at one end)
    assert raw.scale * (-128.5 - raw.zero_point) <= rmin and raw.scale * (127.5 - raw.zero_point) >= rmax
    base = choose_quant_params(min(rmin, -offset / scale), max(rmax, -offset / scale))
    assert base.scale <= raw.scale < 2 * base.scale  # raised to the nearest scale that makes offset / S whole
    # every step of the raw quantization and +-0.3 step around it (a value exactly halfway between two steps may
    # round either way in floating point, in one formula or the other)
    x = raw.scale * (np.arange(-128, 128)[:, None] - raw.zero_point + np.array([-0.3, 0.0, 0.3])).ravel()
    np.testing.assert_array_equal(quantize_tensor(x, raw), quantize_tensor(x * scale + offset, y))
    if offset == 0:
        assert raw == choose_quant_params(rmin, rmax)  # a plain scale changes nothing


def test_rescaling_offset_below_one_input_step_is_rounded():
    """An offset smaller than one step of the raw input cannot be a whole number of steps at a scale that still
    covers the range: the scale is kept and the offset rounds to the nearest step (here 0 steps)."""
    raw = rescaling_input_quant(0, 255, 1.0, 0.001)
    y = rescaled_quant(raw, 1.0, 0.001)
    assert raw.scale == y.scale and raw.zero_point == y.zero_point == -128
    with pytest.raises(UserError, match="cannot be folded"):
        rescaled_quant(QuantParams(1.0, 100), 1 / 255, -0.5)  # a raw quantization chosen elsewhere: Z = 100 + 128


def test_activation_range_relu6():
    q = QuantParams(6 / 255, -128)
    assert activation_range(q, "relu6") == (-128, 127)
    q = QuantParams(0.05, -10)
    assert activation_range(q, "relu") == (-10, 127)
    assert activation_range(q, "relu6") == (-10, 110)
    assert activation_range(q, "none") == (-128, 127)


def test_quantize_tensor_rounds_half_away_and_saturates():
    q = QuantParams(0.5, 3)
    assert quantize_tensor(np.array([0.25, -0.25, 1000.0, -1000.0]), q).tolist() == [4, 2, 127, -128]


def test_softmax_params_match_tflite_formula():
    m, shift, diff_min = softmax_params(1.0, 0.1)
    real = 0.1 * 2**26
    assert math.isclose(m * 2.0 ** (shift - 31), real, rel_tol=1e-9)
    assert diff_min == -math.floor(31 * 2**26 / 2**shift)


def test_per_channel_weights_and_bias():
    rng = np.random.default_rng(0)
    b = GraphBuilder((6, 6, 2))
    kernel = rand(rng, 3, 3, 2, 4)
    kernel[..., 1] *= 100.0  # channels with very different ranges keep their own scale
    kernel[..., 3] = 0.0  # an all-zero channel is fine
    y = b.conv2d("c", b.input, kernel, rand(rng, 4), padding="same")
    g = b.build(y)
    q = quantize(g, rng.normal(size=(32, 6, 6, 2)).astype(np.float32), progress=False)
    layer = q.layers[0]
    assert layer.qkernel.shape == (4, 3, 3, 2) and layer.qkernel.dtype == np.int8
    assert np.abs(layer.qkernel.reshape(4, -1)).max(axis=1).tolist()[:3] == [127, 127, 127]
    assert not layer.qkernel[3].any()
    assert layer.qbias.dtype == np.int32 and layer.requant.multiplier.shape == (4,)


def test_float_and_int8_agree_within_a_few_lsb():
    rng = np.random.default_rng(1)
    b = GraphBuilder((10, 8, 3))
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 8), rand(rng, 8), 2, 1, "same", "relu")
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 8, 1), rand(rng, 8), 1, 1, "same", "relu6")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 8, 8), rand(rng, 8), activation="relu")
    y = b.global_avg_pool2d("gap", y)
    y = b.dense("fc", y, rand(rng, 8, 4), rand(rng, 4))
    g = b.build(y)
    x = rng.normal(size=(200, 10, 8, 3)).astype(np.float32)
    q = quantize(g, x, progress=False)
    a = agreement(g, q, x)
    assert a.max_lsb <= 3.0 and a.top1 >= 0.95, a
