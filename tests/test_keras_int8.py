"""Oracle chain, first link: float Keras ≈ sepgen's int8 simulator (within a few output LSBs),
and the int8 model's generated C == simulator byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module
from util import assert_c_matches

keras = require_module("keras")

import sepgen  # noqa: E402
from sepgen.quantize import dequantize_tensor, quantize_tensor  # noqa: E402
from sepgen.verification import random_inputs  # noqa: E402

L = keras.layers


def ds_cnn_block_model(seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 10, 2))
    x = L.Conv2D(8, (5, 3), strides=2, padding="same", use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU(6.0)(y)
    y = L.Conv2D(8, 1)(y)
    x = L.Add()([x, y])
    x = L.SeparableConv2D(12, (3, 1), padding="valid", dilation_rate=1)(x)
    x = L.Conv2D(12, (1, 3), activation="relu")(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(6)(x)
    return keras.Model(inputs, x)


def randomize_batchnorm(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2.0, c)])


def small_model(seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 7, 3))
    x = L.DepthwiseConv2D(3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 1, activation="relu6")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5)(x))


@pytest.mark.parametrize("build,seed,max_lsb,mean_lsb", [
    (small_model, 0, 3.0, 0.75), (small_model, 1, 3.0, 0.75),
    # 10 layers deep: rounding noise of every layer adds up, still a few LSB
    (ds_cnn_block_model, 0, 8.0, 1.0), (ds_cnn_block_model, 1, 8.0, 1.0),
])
def test_keras_float_vs_int8_simulator(build, seed, max_lsb, mean_lsb):
    rng = np.random.default_rng(seed)
    model = build(seed)
    randomize_batchnorm(model, rng)
    shape = tuple(model.inputs[0].shape[1:])
    x = rng.normal(size=(300,) + shape).astype(np.float32)
    reference = np.asarray(model(x, training=False))
    graph = sepgen.load(model)
    q = sepgen.quantize(graph, x, progress=False)
    out_q = q.tensors[q.output].quant
    got = dequantize_tensor(sepgen.run(q, quantize_tensor(x, q.tensors[q.input].quant)), out_q)
    err = np.abs(got - reference) / out_q.scale
    assert err.max() <= max_lsb and err.mean() <= mean_lsb, (err.max(), err.mean())
    assert (got.argmax(1) == reference.argmax(1)).mean() >= 0.95
    agreement = sepgen.agreement(graph, q, x)  # the figure `generate` prints is the same measurement
    assert abs(agreement.max_lsb - err.max()) < 1e-3
    assert_c_matches(q, np.concatenate([random_inputs(q, 16), quantize_tensor(x[:16], q.tensors[q.input].quant)]))


@pytest.mark.parametrize("name", ["_mobilenet_v2_035_96", "_resnet8", "_mobilenet_v3_small_shaped", "_har_1d",
                                  "_concat_skips"])
def test_issue_model_zoo_with_sepgens_quantizer(name):
    """The coverage models (also checked against TFLM through the converter in tests/test_tflite.py) from Keras
    through sepgen's own quantizer: generated C == simulator on the host and on Cortex-M4 under QEMU (the C
    generated for --target cortex-m4)."""
    import test_tflite

    from sepgen import zoo
    from sepgen.frontends import load
    from sepgen.quantize import quantize

    model = getattr(test_tflite, name)(keras)
    zoo.randomize_keras_weights(model, 3)
    graph = load(model)
    shape = graph.tensors[graph.input].shape
    calibration = np.random.default_rng(0).normal(size=(16,) + shape).astype(np.float32)
    q = quantize(graph, calibration, progress=False)
    inputs = random_inputs(q, 6)
    assert_c_matches(q, inputs, sanitize=name != "_mobilenet_v2_035_96")
    test_tflite._assert_cortex_m4_matches(q, inputs[:3])


def _pixel_model(first):
    """A small image classifier on 10x9x3 pixels behind the layer ``first`` (weights: from the seed only)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((10, 9, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(first(inputs))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = L.Conv2D(8, 1, activation="relu", name="pw")(x)
    return keras.Model(inputs, L.Dense(4, name="fc")(L.GlobalAveragePooling2D(name="gap")(x)), name="pixels")


def _assert_agrees(graph, q, x) -> None:
    """sepgen.evaluate: the float model and the int8 one agree within a few output LSB (this random net's
    rounding noise is the same with or without a Rescaling in front)."""
    agreement = sepgen.agreement(graph, q, x)
    assert agreement.max_lsb <= 4.0 and agreement.mean_lsb <= 1.5 and agreement.top1 >= 0.95, agreement


def test_rescaling_first_layer_is_folded_into_the_input_quantization():
    """Images 0..255 with Rescaling(1/255) first: the int8 model takes the pixels (scale 1, zero point -128: q = pixel
    - 128), the header says so, no mul/add runs for it, its int8 outputs are those of the same net without the
    Rescaling fed the quantized rescaled images, the float model agrees with it and the generated C equals the
    simulator (host, and Cortex-M4 under QEMU)."""
    from sepgen import codegen

    model = _pixel_model(L.Rescaling(1 / 255, name="rs"))
    x = np.random.default_rng(0).integers(0, 256, size=(200, 10, 9, 3)).astype(np.float32)
    graph = sepgen.load(model)
    q = sepgen.quantize(graph, x, progress=False)
    assert [layer.op for layer in q.layers] == ["rescaling", "conv2d", "depthwise_conv2d", "conv2d", "mean",
                                                "fully_connected"]
    assert q.tensors[q.input].quant == sepgen.ir.QuantParams(1.0, -128)
    assert q.tensors[q.layer("rs").output].quant == sepgen.ir.QuantParams(1 / 255, -128)
    header = codegen.render(q, "pix")["pix.h"]
    assert "#define PIX_INPUT_SCALE 1f" in header and "#define PIX_INPUT_ZERO_POINT -128" in header
    pixels = quantize_tensor(x, q.tensors[q.input].quant)
    np.testing.assert_array_equal(pixels.astype(np.int16), x.astype(np.int16) - 128)  # exactly pixel - 128

    twin = _pixel_model(L.Identity(name="rs"))  # the same weights, the images rescaled beforehand
    twin.set_weights(model.get_weights())
    y = x * np.float32(1 / 255)
    twin_q = sepgen.quantize(sepgen.load(twin), y, progress=False)
    np.testing.assert_array_equal(sepgen.run(q, pixels),
                                  sepgen.run(twin_q, quantize_tensor(y, twin_q.tensors[twin_q.input].quant)))
    _assert_agrees(graph, q, x)
    assert_c_matches(q, np.concatenate([random_inputs(q, 8), pixels[:8]]))
    import test_tflite

    test_tflite._assert_cortex_m4_matches(q, pixels[:3])  # the C generated for --target cortex-m4, under QEMU


@pytest.mark.parametrize("scale,offset", [(1 / 127.5, -1.0), (1 / 255, -0.5), (2.0, 3.0)])
def test_rescaling_with_an_offset_is_folded_exactly(scale, offset):
    """With an offset the quantizer raises the input scale to the nearest one that makes offset / rescaled scale a
    whole number, so quantizing the raw input gives exactly the bytes that quantizing the rescaled input would
    (for images scaled to [-1, 1]: scale 127.5/127, zero point -128)."""
    model = _pixel_model(L.Rescaling(scale, offset, name="rs"))
    x = np.random.default_rng(1).integers(0, 256, size=(100, 10, 9, 3)).astype(np.float32)
    graph = sepgen.load(model)
    q = sepgen.quantize(graph, x, progress=False)
    assert q.layers[0].op == "rescaling" and not {"mul", "add"} & {layer.op for layer in q.layers}
    raw, rescaled = q.tensors[q.input].quant, q.tensors[q.layer("rs").output].quant
    every_pixel = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(quantize_tensor(every_pixel, raw),
                                  quantize_tensor(every_pixel * np.float32(scale) + np.float32(offset), rescaled))
    if offset < 0:
        assert raw == sepgen.ir.QuantParams(127.5 / 127, -128)
    _assert_agrees(graph, q, x)
    assert_c_matches(q, np.concatenate([random_inputs(q, 6), quantize_tensor(x[:6], raw)]), sanitize=False)


def test_per_channel_rescaling_stays_a_multiply_and_add():
    """A per-channel Rescaling (mean/std normalisation) cannot be one input quantization: a MUL and an ADD of
    per-channel constants run first, and the float model, the int8 one and the C still agree."""
    model = _pixel_model(L.Rescaling([1 / 58.4, 1 / 57.1, 1 / 57.4], [-2.12, -2.04, -1.80], name="rs"))
    x = np.random.default_rng(2).integers(0, 256, size=(200, 10, 9, 3)).astype(np.float32)
    graph = sepgen.load(model)
    q = sepgen.quantize(graph, x, progress=False)
    assert [layer.op for layer in q.layers][:3] == ["mul", "add", "conv2d"]
    assert q.layers[0].qconstant.shape == (3,) and q.layers[1].qconstant.shape == (3,)
    _assert_agrees(graph, q, x)
    assert_c_matches(q, np.concatenate([random_inputs(q, 8), quantize_tensor(x[:8], q.tensors[q.input].quant)]))
