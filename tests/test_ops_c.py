"""Every op, compiled and run, byte-exact against the simulator over grids of shapes and options.

Each case builds a tiny random model, quantizes it with calibration data chosen to
produce ordinary or extreme zero points, renders C, compiles it with the strict warning
set of sepgen.toolchain.WARNINGS (-std=c99 -Wall -Wextra -Wconversion -Wshadow -Wsign-conversion
-pedantic -Werror; again with -fsanitize=address,undefined) and compares every layer's output
on random full-range int8 inputs.
Cases marked slow run with --run-slow; CI runs the rest (a representative subset
covering every option value at least once).
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from util import assert_c_matches, quantized, rand, single_layer

SLOW = pytest.mark.slow


def _grid(all_cases, keep_every: int):
    """All cases as params; every ``keep_every``-th one (plus the first of each value) runs in CI."""
    params, seen = [], set()
    for i, case in enumerate(all_cases):
        new_values = {(k, v) for k, v in enumerate(case)} - seen
        fast = i % keep_every == 0 or bool(new_values)
        seen |= {(k, v) for k, v in enumerate(case)}
        params.append(pytest.param(*case, marks=() if fast else SLOW, id="-".join(map(str, case))))
    return params


DW_CASES = [c for c in itertools.product(
    [(3, 3), (5, 5), (3, 1), (1, 3), (1, 1)],  # kernel
    [1, 2],  # stride
    ["same", "valid"],
    [1, 2, 3],  # depth multiplier
    [1, 2],  # dilation
    [(7, 9, 3), (5, 5, 1)],  # input shape (odd sizes, C = 1)
    ["none", "relu6"],
) if not (c[1] > 1 and c[4] > 1) and not (c[2] == "valid" and (c[0][0] - 1) * c[4] + 1 > c[5][0])]


@pytest.mark.parametrize("kernel,stride,padding,dm,dilation,shape,act", _grid(DW_CASES, 9))
def test_depthwise_conv2d(kernel, stride, padding, dm, dilation, shape, act):
    rng = np.random.default_rng(zlib.crc32(repr(((kernel, stride, padding, dm, dilation, shape, act))).encode()))
    g = single_layer(shape, lambda b, x: b.depthwise_conv2d(
        "dw", x, rand(rng, *kernel, shape[2], dm), rand(rng, shape[2] * dm, scale=0.2), stride, dilation,
        padding, act))
    assert_c_matches(*quantized(g, rng))


CONV_CASES = [c for c in itertools.product(
    [(3, 3), (1, 1), (3, 1), (1, 3), (5, 5), (10, 4)],
    [1, 2],
    ["same", "valid"],
    [1, 2],  # dilation
    [(9, 7, 3), (11, 5, 1)],
    [1, 4],  # output channels
    ["none", "relu", "relu6"],
) if not (c[1] > 1 and c[3] > 1) and not (c[2] == "valid" and ((c[0][0] - 1) * c[3] + 1 > c[4][0]
                                                                 or (c[0][1] - 1) * c[3] + 1 > c[4][1]))]


@pytest.mark.parametrize("kernel,stride,padding,dilation,shape,cout,act", _grid(CONV_CASES, 12))
def test_conv2d(kernel, stride, padding, dilation, shape, cout, act):
    rng = np.random.default_rng(zlib.crc32(repr(((kernel, stride, padding, dilation, shape, cout, act))).encode()))
    g = single_layer(shape, lambda b, x: b.conv2d(
        "conv", x, rand(rng, *kernel, shape[2], cout, scale=0.3), rand(rng, cout, scale=0.2), stride, dilation,
        padding, act))
    assert_c_matches(*quantized(g, rng))


POOL_CASES = list(itertools.product(["max", "avg"], [2, 3, (3, 1)], [1, 2], ["same", "valid"],
                                    [(7, 9, 3), (5, 5, 1)]))


@pytest.mark.parametrize("kind,pool,stride,padding,shape", _grid(POOL_CASES, 4))
def test_pooling(kind, pool, stride, padding, shape):
    rng = np.random.default_rng(zlib.crc32(repr(((kind, pool, stride, padding, shape))).encode()))
    method = "max_pool2d" if kind == "max" else "avg_pool2d"
    g = single_layer(shape, lambda b, x: getattr(b, method)("pool", x, pool, stride, padding))
    assert_c_matches(*quantized(g, rng))


@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_extreme_zero_points_separable_block(zero_point_kind):
    """Input zero points -128 / 127 and a very wide range, through a full DS-CNN style block."""
    rng = np.random.default_rng(7)

    def build(b, x):
        y = b.depthwise_conv2d("dw", x, rand(rng, 3, 3, 4, 1), rand(rng, 4), 1, 1, "same", "relu")
        y = b.conv2d("pw", y, rand(rng, 1, 1, 4, 6), rand(rng, 6), activation="relu6")
        y = b.global_avg_pool2d("gap", y)
        return b.dense("fc", y, rand(rng, 6, 5), rand(rng, 5), activation="softmax")

    assert_c_matches(*quantized(single_layer((7, 5, 4), build), rng, kind=zero_point_kind))


@pytest.mark.parametrize("n_in,n_out,act", [(1, 1, "none"), (17, 10, "relu"), (64, 3, "relu6"), (300, 12, "none")])
def test_fully_connected(n_in, n_out, act):
    rng = np.random.default_rng(n_in * 31 + n_out)
    g = single_layer((n_in,), lambda b, x: b.dense("fc", x, rand(rng, n_in, n_out, scale=0.2), rand(rng, n_out), act))
    assert_c_matches(*quantized(g, rng))


@pytest.mark.parametrize("n,logit_scale", [(2, 1.0), (10, 0.1), (12, 4.0), (33, 20.0), (1, 1.0)])
def test_softmax(n, logit_scale):
    """Softmax after a dense layer; logit_scale spreads the input range (many diffs below diff_min)."""
    rng = np.random.default_rng(n)
    g = single_layer((8,), lambda b, x: b.dense("fc", x, rand(rng, 8, n, scale=logit_scale), None, "softmax"))
    assert_c_matches(*quantized(g, rng, kind="wide" if logit_scale > 5 else "normal"))


@pytest.mark.parametrize("act,scales", [("none", (1.0, 1.0)), ("relu", (0.2, 3.0)), ("relu6", (5.0, 0.5))])
def test_add_residual(act, scales):
    rng = np.random.default_rng(3)

    def build(b, x):
        y1 = b.conv2d("a", x, rand(rng, 1, 1, 3, 5, scale=scales[0]), None)
        y2 = b.depthwise_conv2d("b", x, rand(rng, 3, 3, 3, 1, scale=scales[1]), None, padding="same")
        y2 = b.conv2d("b_pw", y2, rand(rng, 1, 1, 3, 5), None)
        return b.add("add", [y1, y2], act)

    assert_c_matches(*quantized(single_layer((5, 7, 3), build), rng))


def test_mean_reshape_and_flatten():
    rng = np.random.default_rng(11)

    def build(b, x):
        y = b.global_avg_pool2d("gap", x, keepdims=True)
        y = b.conv2d("pw", y, rand(rng, 1, 1, 6, 4), rand(rng, 4))
        y = b.flatten("flat", y)
        return b.dense("fc", y, rand(rng, 4, 3), None)

    assert_c_matches(*quantized(single_layer((9, 3, 6), build), rng))


def test_flatten_feeds_dense_in_nhwc_order():
    rng = np.random.default_rng(12)

    def build(b, x):
        y = b.conv2d("c", x, rand(rng, 3, 3, 2, 3), rand(rng, 3), padding="same", activation="relu")
        y = b.max_pool2d("mp", y, 2)
        return b.dense("fc", b.flatten("flat", y), rand(rng, 4 * 3 * 3, 5), rand(rng, 5))

    assert_c_matches(*quantized(single_layer((8, 7, 2), build), rng))


@pytest.mark.parametrize("paddings", [((1, 0), (0, 2)), ((2, 2), (1, 1)), ((0, 0), (3, 0))])
def test_pad_then_valid_depthwise(paddings):
    rng = np.random.default_rng(sum(sum(p) for p in paddings))

    def build(b, x):
        y = b.pad("pad", x, paddings)
        return b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 3, 1), rand(rng, 3), padding="valid")

    assert_c_matches(*quantized(single_layer((5, 6, 3), build), rng, kind="positive"))


@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_elementwise_activations(zero_point_kind):
    """Standalone elementwise activations (leaky ReLU with slopes below and above 1, hard swish after a conv and
    alone) at ordinary and extreme zero points."""
    rng = np.random.default_rng(11)

    def build(b, x):
        y = b.leaky_relu("leaky", x, 0.1)
        y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 3, 1), rand(rng, 3), padding="same")
        y = b.leaky_relu("steep", y, 1.5)
        return b.activation("sigmoid", y, "sigmoid")

    assert_c_matches(*quantized(single_layer((5, 6, 3), build), rng, kind=zero_point_kind))


@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_squeeze_excite_and_constant_operands(zero_point_kind):
    """Squeeze-excite (GAP -> 1x1 conv -> relu -> 1x1 conv -> sigmoid or hard_sigmoid -> multiply with the feature
    map, either operand order), a
    per-channel constant add, a scalar constant multiply with a fused ReLU, a trailing-shape (W, C) constant and a
    broadcast add of a vector: C == simulator."""
    rng = np.random.default_rng(12)

    def build(b, x):
        y = b.conv2d("c", x, rand(rng, 3, 3, 3, 6), rand(rng, 6), padding="same", activation="hard_swish")
        g = b.global_avg_pool2d("gap", y, keepdims=True)
        s = b.conv2d("squeeze", g, rand(rng, 1, 1, 6, 2), rand(rng, 2), activation="relu")
        g = b.conv2d("excite", s, rand(rng, 1, 1, 2, 6), rand(rng, 6), activation="sigmoid")
        y = b.multiply("se", [y, g])
        h = b.conv2d("excite_h", s, rand(rng, 1, 1, 2, 6), rand(rng, 6), activation="hard_sigmoid")
        y = b.multiply("se_h", [h, y])
        y = b.add("bias", [y], constant=rand(rng, 6))
        y = b.multiply("scale", [y], "relu", constant=np.array([0.7], np.float32))
        y = b.multiply("wc", [y], constant=rand(rng, 6, 6))
        return b.add("vec", [b.global_avg_pool2d("gap2", y), y])

    graph, inputs = quantized(single_layer((5, 6, 3), build), rng, kind=zero_point_kind)
    assert [layer.op for layer in graph.layers].count("mul") == 5
    assert_c_matches(graph, inputs)


@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_concatenation(zero_point_kind):
    """Concatenation along channels (inputs with other quantizations rescaled, a max-pooled one copied), along
    width and height, and of three inputs: C == simulator."""
    rng = np.random.default_rng(13)

    def build(b, x):
        y = b.conv2d("c", x, rand(rng, 3, 3, 3, 4), rand(rng, 4), padding="same")
        same = b.concatenate("same_quant", [y, b.max_pool2d("mp", y, 3, 1, "same")])
        ch = b.concatenate("channels", [same, b.leaky_relu("leaky", same, 0.3), b.conv2d("pw", same, rand(rng, 1, 1, 8, 2))])
        w = b.concatenate("width", [ch, b.activation("hs", ch, "hard_swish")], axis=1)
        return b.concatenate("height", [w, b.max_pool2d("mp2", w, 2, 1, "same")], axis=-3)

    graph, inputs = quantized(single_layer((5, 6, 3), build), rng, kind=zero_point_kind)
    cat = graph.layer("same_quant")
    assert (cat.multipliers == 0).all() and graph.layer("height").output_shape == (10, 12, 18)
    assert_c_matches(graph, inputs)


@pytest.mark.parametrize("zero_point_kind", ["normal", "positive", "negative", "wide"])
def test_maximum_minimum(zero_point_kind):
    """Maximum/minimum of tensors with other quantizations (rescaled), of one quantization (compared raw), with a
    per-channel constant and with a broadcast vector: C == simulator."""
    rng = np.random.default_rng(14)

    def build(b, x):
        y = b.conv2d("c", x, rand(rng, 3, 3, 3, 4), rand(rng, 4), padding="same")
        y = b.maximum("max", [y, b.leaky_relu("leaky", y, 0.2)])
        y = b.minimum("same_quant", [y, b.max_pool2d("mp", y, 2, 1, "same")])
        y = b.minimum("clip", [y], constant=rand(rng, 4))
        return b.maximum("floor", [y, b.global_avg_pool2d("gap", y)])

    graph, inputs = quantized(single_layer((5, 6, 3), build), rng, kind=zero_point_kind)
    assert int(graph.layer("same_quant").input1_requant.multiplier[0]) == 0
    assert_c_matches(graph, inputs)


def test_upsample_nearest_then_concatenate():
    """A U-Net-like step: a strided conv, UpSampling2D (nearest) back to the skip's size, concatenation with the
    skip: C == simulator."""
    rng = np.random.default_rng(15)

    def build(b, x):
        skip = b.conv2d("c", x, rand(rng, 3, 3, 3, 4), rand(rng, 4), padding="same", activation="relu")
        down = b.conv2d("down", skip, rand(rng, 3, 3, 4, 6), rand(rng, 6), 2, padding="same", activation="relu")
        up = b.upsample_nearest("up", down, (2, 3))
        return b.concatenate("cat", [skip, b.conv2d("crop", up, rand(rng, 1, 3, 6, 4), rand(rng, 4))])

    graph, inputs = quantized(single_layer((6, 4, 3), build), rng)
    assert graph.layer("up").output_shape == (6, 6, 6)
    assert_c_matches(graph, inputs)
