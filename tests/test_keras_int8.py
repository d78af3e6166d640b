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
