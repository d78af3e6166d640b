"""int8 .tflite import: simulator == TensorFlow Lite Micro on every tensor, generated C == simulator.

Models are built here with Keras, converted by the TF converter (full int8,
representative data generated in the test) once per session, loaded with
sepgen's .tflite frontend and run on >= 20 int8 inputs (random full range, the two
constant extremes, quantized representative samples).  Integer tensors are
compared with no tolerance.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
from conftest import require_module
from util import assert_c_matches

from sepgen import zoo

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ----------------------------------------------------------------- models
def _seq(keras, shape, *layers):
    return keras.Sequential([keras.Input(shape, batch_size=1)] + list(layers))


def _randomize(model, seed: int) -> None:
    zoo.randomize_keras_weights(model, seed)


def _ds_cnn(keras):
    return zoo.ds_cnn_kws_keras()


def _mobilenet_v1_025(keras):
    return zoo.mobilenet_v1_025_keras()


def _residual(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 4), batch_size=1)
    y = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    x = L.ReLU()(L.Add()([inp, y]))
    x = L.Conv2D(6, 1)(x)
    y = L.Conv2D(6, 3, padding="same")(x)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    return keras.Model(inp, x)


def _mobilenet_v3_small_shaped(keras):
    """MobileNetV3-small's building blocks on 32x32x3: a stride-2 hard-swish stem, inverted-residual blocks with
    squeeze-excite (global pooling -> 1x1 ReLU -> 1x1 hard_sigmoid -> Multiply) and hard-swish, a residual Add."""
    L = keras.layers

    def se(x, channels, squeeze):
        g = L.GlobalAveragePooling2D(keepdims=True)(x)
        g = L.Conv2D(squeeze, 1, activation="relu")(g)
        return L.Multiply()([x, L.Conv2D(channels, 1, activation="hard_sigmoid")(g)])

    inp = keras.Input((32, 32, 3), batch_size=1)
    x = L.Activation("hard_swish")(L.BatchNormalization()(L.Conv2D(8, 3, strides=2, padding="same")(inp)))
    y = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 1)(se(y, 8, 4))
    z = L.Conv2D(24, 1, activation="hard_swish")(y)
    z = L.DepthwiseConv2D(5, padding="same", activation="hard_swish")(z)
    z = L.Conv2D(8, 1)(se(z, 24, 8))
    x = L.Add()([y, z])
    x = L.Conv2D(32, 1, activation="hard_swish")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(L.Dense(16, activation="hard_swish")(x)))


def _concat_skips(keras):
    """Skip connections joined by Concatenate along channels and along width (what U-Net-like nets do at one
    resolution), then a pointwise conv."""
    L = keras.layers
    inp = keras.Input((8, 6, 3), batch_size=1)
    skip = L.Conv2D(6, 3, padding="same", activation="relu")(inp)
    branch = L.Conv2D(4, 1, activation="relu6")(L.DepthwiseConv2D(3, padding="same")(skip))
    x = L.Concatenate()([skip, branch, L.MaxPooling2D(3, 1, "same")(skip)])
    x = L.Concatenate(axis=2)([x, L.Conv2D(16, 1)(x)])
    return keras.Model(inp, L.Conv2D(4, 1)(x))


def _unet_small(keras, resizing: bool = False):
    """A small U-Net-ish net: conv -> pool -> conv -> UpSampling2D (nearest) -> Concatenate with the skip -> conv ->
    1x1 conv.  (The converter writes Keras 3's UpSampling2D as RESHAPE -> TILE -> RESHAPE, read back as one
    nearest-neighbour resize.)  ``resizing``: the same net with Resizing(nearest) instead of UpSampling2D, which
    the converter writes as RESIZE_NEAREST_NEIGHBOR."""
    L = keras.layers
    inp = keras.Input((16, 16, 3), batch_size=1)
    skip = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.Conv2D(12, 3, padding="same", activation="relu")(L.MaxPooling2D(2)(skip))
    up = L.Resizing(16, 16, interpolation="nearest") if resizing else L.UpSampling2D(2)
    x = L.Concatenate()([skip, up(x)])
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(inp, L.Conv2D(2, 1)(x))


def _har_1d(keras):
    """A 1-D separable human-activity classifier on 128x3 accelerometer windows (Conv1D, SeparableConv1D,
    DepthwiseConv1D with dilation, 1-D pooling, GlobalAveragePooling1D)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((128, 3), batch_size=1), L.Conv1D(16, 5, strides=2, padding="same", activation="relu"),
        L.SeparableConv1D(32, 5, padding="same", activation="relu"), L.MaxPooling1D(2),
        L.DepthwiseConv1D(3, dilation_rate=2, padding="same", activation="relu6"), L.Conv1D(32, 1, activation="relu"),
        L.SeparableConv1D(48, 3, strides=2, activation="relu"), L.AveragePooling1D(2),
        L.GlobalAveragePooling1D(), L.Dense(6, activation="softmax")])


def _mobilenet_v2_035_96(keras):
    """keras.applications' MobileNetV2, alpha 0.35, 96x96 (inverted residuals, ReLU6, ADD), random weights."""
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)


def _resnet8(keras):
    """MLPerf Tiny's ResNet-8 for CIFAR-10: three residual stacks (16, 32, 64 filters; a 1x1 strided shortcut),
    ADD + ReLU, average pooling, Dense softmax."""
    L = keras.layers
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inp)))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride > 1:
            x = L.Conv2D(filters, 1, stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(8)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x))


def _models(keras):
    """name -> (model factory, input shape, representative data kind, converter options)."""
    L = keras.layers
    return {
        "depth_multiplier_2": (lambda: _seq(keras, (9, 7, 3), L.DepthwiseConv2D(3, depth_multiplier=2,
                                                                                   padding="same", activation="relu"),
                                            L.Conv2D(5, 1, activation="relu6")), (9, 7, 3), "normal", {}),
        "depth_multiplier_3_dilation_2": (lambda: _seq(
            keras, (11, 9, 2), L.DepthwiseConv2D(3, depth_multiplier=3, dilation_rate=2, activation="relu6"),
            L.DepthwiseConv2D(3, dilation_rate=2, padding="same")), (11, 9, 2), "normal", {}),
        "stride_2_same_odd": (lambda: _seq(
            keras, (9, 7, 3), L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2),
            L.Conv2D(3, (2, 3), strides=2, padding="same")), (9, 7, 3), "normal", {}),
        "residual_add": (lambda: _residual(keras), (8, 8, 4), "normal", {}),
        "kx1_1xk": (lambda: _seq(keras, (11, 9, 2), L.Conv2D(4, (5, 1), activation="relu"),
                                 L.Conv2D(4, (1, 5), padding="same"), L.DepthwiseConv2D((3, 1), padding="same"),
                                 L.DepthwiseConv2D((1, 3), strides=(1, 2))), (11, 9, 2), "normal", {}),
        "pools": (lambda: _seq(keras, (11, 9, 3), L.Conv2D(4, 3, padding="same"),
                               L.AveragePooling2D(3, strides=2, padding="same"), L.MaxPooling2D(2),
                               L.MaxPooling2D(3, strides=1, padding="same"), L.AveragePooling2D((2, 1))),
                  (11, 9, 3), "normal", {}),
        "pad_gap_dense_softmax": (lambda: _seq(
            keras, (7, 7, 3), L.ZeroPadding2D(((1, 2), (0, 1))), L.Conv2D(8, 3, activation="relu"),
            L.GlobalAveragePooling2D(), L.Dense(16, activation="relu"), L.Dense(10), L.Softmax()),
            (7, 7, 3), "normal", {}),
        "dense_per_tensor_no_bias": (lambda: _seq(
            keras, (4, 4, 2), L.Flatten(), L.Dense(12, use_bias=False), L.Dense(6), L.Softmax()),
            (4, 4, 2), "normal", {"_experimental_disable_per_channel_quantization_for_dense_layers": True}),
        "input_positive": (lambda: _seq(keras, (7, 5, 2), L.Conv2D(3, 3, padding="same"), L.AveragePooling2D(2)),
                           (7, 5, 2), "positive", {}),
        "input_negative": (lambda: _seq(keras, (7, 5, 2), L.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
                                        L.GlobalAveragePooling2D(), L.Dense(3)), (7, 5, 2), "negative", {}),
        "input_wide": (lambda: _seq(keras, (6, 6, 1), L.Conv2D(2, 3, activation="relu6"), L.Flatten(), L.Dense(4)),
                       (6, 6, 1), "wide", {}),
        # A dynamic batch makes the converter lower dilated convolutions to SPACE_TO_BATCH_ND -> conv ->
        # BATCH_TO_SPACE_ND, which sepgen reads back as one dilated layer.  (With a bias the converter adds
        # it after BATCH_TO_SPACE_ND as an ADD of a constant: an add layer of its own.)
        "dilated_lowered_valid": (lambda: keras.Sequential([
            keras.Input((9, 11, 3)), L.DepthwiseConv2D(3, dilation_rate=(2, 3), depth_multiplier=2, use_bias=False),
            L.Conv2D(3, 2, dilation_rate=2, use_bias=False)]), (9, 11, 3), "normal", {}),
        "dilated_lowered_same": (lambda: keras.Sequential([
            keras.Input((9, 11, 3)), L.DepthwiseConv2D(3, dilation_rate=2, padding="same", use_bias=False),
            L.Conv2D(4, (3, 2), dilation_rate=2, padding="same", use_bias=False)]), (9, 11, 3), "normal", {}),
        "dilated_lowered_biased": (lambda: keras.Sequential([
            keras.Input((9, 11, 3)), L.DepthwiseConv2D(3, dilation_rate=2, padding="same"),
            L.Conv2D(4, 2, dilation_rate=(2, 3), activation="relu")]), (9, 11, 3), "normal", {}),
        "ds_cnn_kws": (lambda: _ds_cnn(keras), (49, 10, 1), "normal", {}),
        "mobilenet_v3_small_shaped": (lambda: _mobilenet_v3_small_shaped(keras), (32, 32, 3), "normal", {}),
        "concat_skips": (lambda: _concat_skips(keras), (8, 6, 3), "normal", {}),
        "unet_small": (lambda: _unet_small(keras), (16, 16, 3), "normal", {}),
        "har_1d": (lambda: _har_1d(keras), (128, 3), "normal", {}),
        "mobilenet_v2_035_96": (lambda: _mobilenet_v2_035_96(keras), (96, 96, 3), "normal", {}),
        "resnet8": (lambda: _resnet8(keras), (32, 32, 3), "normal", {}),
        "rescaling_input": (lambda: _seq(keras, (8, 8, 3), L.Rescaling([1 / 127.5, 1 / 64, 1 / 100], -1.0),
                                         L.Conv2D(4, 3, activation="relu"), L.GlobalAveragePooling2D()),
                            (8, 8, 3), "wide", {}),
        "mobilenet_v1_025_96": (lambda: _mobilenet_v1_025(keras), (96, 96, 3), "normal", {}),
    }


def representative(shape, kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(shape)).astype(np.float32)
    if kind == "positive":
        x = np.abs(x) * 3.0 + 0.5  # input zero point -128
    elif kind == "negative":
        x = -np.abs(x) - 0.1  # input zero point 127
    elif kind == "wide":
        x = x * 300.0 + 50.0
    return x


def convert(model, data: np.ndarray, float_io: bool = False, **options) -> bytes:
    from sepgen.tfconvert import keras_to_int8_tflite

    return keras_to_int8_tflite(model, data, float_io, **options)


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory):
    """get(name) -> (path of the converted .tflite, float representative data); converted once per session."""
    cache: dict[str, tuple] = {}
    root = tmp_path_factory.mktemp("tflite")

    def get(name: str):
        if name not in cache:
            require_module("tflite_micro")
            keras = require_module("keras")
            factory, shape, kind, options = _models(keras)[name]
            seed = zlib.crc32(name.encode())
            keras.utils.set_random_seed(seed % (1 << 31))
            model = factory()
            _randomize(model, seed)
            data = representative(shape, kind, 64, seed)
            path = root / f"{name}.tflite"
            path.write_bytes(convert(model, data, **options))
            cache[name] = (path, data, model)
        return cache[name]

    return get


def _inputs(graph, data: np.ndarray, count: int = 24) -> np.ndarray:
    from sepgen.quantize import quantize_tensor
    from sepgen.verification import random_inputs

    return np.concatenate([random_inputs(graph, count - 8, seed=1),
                           quantize_tensor(data[:8].reshape((8,) + graph.tensors[graph.input].shape),
                                           graph.tensors[graph.input].quant)])


def _check(tflite_model, name: str, c_check: bool = True, sanitize: bool = True, cortex_m4: bool = False):
    """0 LSB against TFLM on every tensor, C == simulator on the host; ``cortex_m4``: also the C generated for
    --target cortex-m4 (its DSP kernels) on the core under QEMU, on the first 4 inputs."""
    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    path, data, _ = tflite_model(name)
    graph = load(path)
    assert graph.quantizer == "tflite"
    inputs = _inputs(graph, data)
    assert len(inputs) >= 20
    mismatch = compare_with_tflm(graph, path, inputs)
    assert mismatch is None, f"simulator vs TFLM: {mismatch}"
    if c_check:
        assert_c_matches(graph, inputs, sanitize=sanitize)
    if cortex_m4:
        _assert_cortex_m4_matches(graph, inputs[:4])
    return graph


def _assert_cortex_m4_matches(graph, inputs) -> None:
    from conftest import require_tool

    from sepgen import firmware

    require_tool(firmware.CROSS_COMPILER)
    require_tool(firmware.QEMU)
    result = firmware.verify_target(graph, inputs, "cortex-m4")
    assert result.ok, f"cortex-m4: {result.mismatch}"


SMALL = ["depth_multiplier_2", "depth_multiplier_3_dilation_2", "stride_2_same_odd", "residual_add", "kx1_1xk",
         "pools", "pad_gap_dense_softmax", "dense_per_tensor_no_bias", "input_positive", "input_negative",
         "input_wide"]


@pytest.mark.parametrize("name", SMALL)
def test_small_models_match_tflm_and_c(tflite_model, name):
    _check(tflite_model, name)


def _lowered_ops(path) -> list[str]:
    from sepgen.frontends.tflite_file import _enum_names, parse_model

    schema, model = parse_model(path.read_bytes(), path)
    names = _enum_names(schema.BuiltinOperator)
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    return [codes[op.opcodeIndex] for op in model.subgraphs[0].operators]


def _matches_tflite_reference(graph, path, inputs) -> None:
    """Every tensor sepgen computes == TFLite's BUILTIN_REF interpreter (the reference kernels TFLM shares)."""
    tf = require_module("tensorflow")
    from sepgen import simulate

    interpreter = tf.lite.Interpreter(model_content=path.read_bytes(), experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    ours = simulate.run(graph, inputs, all_tensors=True)
    for n, x in enumerate(inputs):
        interpreter.set_tensor(input_index, x[None])
        interpreter.invoke()
        for layer in graph.layers:
            want = interpreter.get_tensor(graph.tensors[layer.output].source_index)[0]
            np.testing.assert_array_equal(ours[layer.output][n], want, err_msg=f"sample {n}, layer {layer.name}")


@pytest.mark.parametrize("name,expect", [
    ("dilated_lowered_valid", [("depthwise_conv2d", (2, 3), "valid"), ("conv2d", (2, 2), "valid")]),
    ("dilated_lowered_same", [("depthwise_conv2d", (2, 2), "same"), ("conv2d", (2, 2), "same")]),
    ("dilated_lowered_biased", [("depthwise_conv2d", (2, 2), "same"), ("add", None, None),
                                ("conv2d", (2, 3), "valid"), ("add", None, None)]),
])
def test_dilated_lowering_is_one_layer(tflite_model, name, expect):
    """SPACE_TO_BATCH_ND -> (DEPTHWISE_)CONV_2D -> BATCH_TO_SPACE_ND, as the converter writes it for a dynamic
    batch: read back as one dilated layer each, 0 LSB against TFLite's reference kernels on every tensor and
    C == simulator.  (TFLM is no oracle here: it runs these ops on the file's static batch-1 shapes, and its
    SPACE_TO_BATCH_ND leaves the pad value unset, so its outputs are not defined for such files.)"""
    from sepgen.frontends import load

    path, data, _ = tflite_model(name)
    assert _lowered_ops(path).count("SPACE_TO_BATCH_ND") == 2  # the lowering is really exercised
    graph = load(path)
    assert [(layer.op, getattr(layer, "dilation", None), getattr(layer, "padding", None))
            for layer in graph.layers] == expect
    inputs = _inputs(graph, data)
    _matches_tflite_reference(graph, path, inputs)
    assert_c_matches(graph, inputs)
    _assert_cortex_m4_matches(graph, inputs[:4])


def test_mobilenet_v3_small_shaped_matches_tflm_and_c(tflite_model):
    """Hard swish, squeeze-excite's broadcast MUL and the converter's lowering of hard_sigmoid, a residual ADD: 0 LSB
    against TFLM on every tensor, C == simulator."""
    graph = _check(tflite_model, "mobilenet_v3_small_shaped", cortex_m4=True)
    names = [layer.op for layer in graph.layers]
    # the converter folds hard_sigmoid's + 3 into the conv's bias, fuses the ReLU6 and multiplies by a constant 1/6
    assert names.count("hard_swish") == 5 and names.count("mul") == 4, names
    assert sum(layer.op == "mul" and layer.constant is not None for layer in graph.layers) == 2


def test_concatenate_skips_match_tflm_and_c(tflite_model):
    graph = _check(tflite_model, "concat_skips", cortex_m4=True)
    cats = [layer for layer in graph.layers if layer.op == "concatenation"]
    assert [c.positive_axis for c in cats] == [2, 1] and graph.layers[-1].output_shape == (8, 12, 4)


def test_unet_small_upsampling_and_concat_match_tflm_and_c(tflite_model, tmp_path):
    """A small U-Net: the converter's RESHAPE -> TILE -> RESHAPE chains for UpSampling2D are read as one
    resize_nearest layer, joined to the skip by a concatenation; C == simulator on the host and on Cortex-M4.

    TFLM has no TILE kernel (nor has TFLite's reference resolver an int8 one), so the oracle is twofold: TFLite's
    builtin TILE/RESHAPE kernels give the resize and concatenation layers' outputs byte for byte from their
    inputs, and the same net and weights with Resizing(nearest) (RESIZE_NEAREST_NEIGHBOR, which TFLM runs)
    gives the same graph, every tensor equal to this one's and 0 LSB against TFLM on every tensor."""
    tf = require_module("tensorflow")
    keras = require_module("keras")
    from sepgen import simulate
    from sepgen.frontends import load
    from sepgen.frontends.tflite import tflm_can_run
    from sepgen.tflm import compare_with_tflm

    path, data, model = tflite_model("unet_small")
    assert "TILE" in _lowered_ops(path) and "TILE" in tflm_can_run(path)  # the lowering is really exercised
    graph = load(path)
    ops = [layer.op for layer in graph.layers]
    assert ops == ["conv2d", "max_pool2d", "conv2d", "resize_nearest", "concatenation", "conv2d", "conv2d"], ops
    up = graph.layers[3]
    assert (up.input_shape, up.output_shape) == ((8, 8, 12), (16, 16, 12))
    assert up.rows == tuple(y // 2 for y in range(16)) and up.cols == up.rows
    inputs = _inputs(graph, data)

    interpreter = tf.lite.Interpreter(model_content=path.read_bytes(), experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=tf.lite.experimental.OpResolverType.
                                      BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    for x in inputs[:4]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        for layer in graph.layers[3:5]:
            ins = [interpreter.get_tensor(graph.tensors[t].source_index) for t in layer.inputs]  # a batch of 1
            want = interpreter.get_tensor(graph.tensors[layer.output].source_index)[0]
            np.testing.assert_array_equal(layer.run_int8(graph, ins)[0], want, err_msg=layer.name)

    twin = _unet_small(keras, resizing=True)
    twin.set_weights(model.get_weights())
    twin_path = tmp_path / "unet_small_resizing.tflite"
    twin_path.write_bytes(convert(twin, data))
    assert "RESIZE_NEAREST_NEIGHBOR" in _lowered_ops(twin_path) and tflm_can_run(twin_path) == ""
    twin_graph = load(twin_path)
    assert [layer.op for layer in twin_graph.layers] == ops
    assert (twin_graph.layers[3].rows, twin_graph.layers[3].cols) == (up.rows, up.cols)
    ours, theirs = (simulate.run(g, inputs, all_tensors=True) for g in (graph, twin_graph))
    for a, b in zip(graph.layers, twin_graph.layers):
        assert graph.tensors[a.output].quant == twin_graph.tensors[b.output].quant, a.name
        np.testing.assert_array_equal(ours[a.output], theirs[b.output], err_msg=a.name)
    mismatch = compare_with_tflm(twin_graph, twin_path, inputs)
    assert mismatch is None, f"simulator vs TFLM: {mismatch}"

    assert_c_matches(graph, inputs)
    _assert_cortex_m4_matches(graph, inputs[:4])


def test_har_1d_separable_matches_tflm_and_c(tflite_model):
    """Conv1D / SeparableConv1D / DepthwiseConv1D as the converter writes them (EXPAND_DIMS -> conv -> SQUEEZE, or
    RESHAPE): read as height-1 2-D layers, 0 LSB against TFLM on every tensor, C == simulator."""
    graph = _check(tflite_model, "har_1d", cortex_m4=True)
    assert graph.tensors[graph.input].shape == (1, 128, 3)
    spatial = [layer for layer in graph.layers if layer.op in ("conv2d", "depthwise_conv2d")]
    assert len(spatial) == 7 and all(layer.kernel_size[0] == 1 for layer in spatial)


def test_mobilenet_v2_035_96_matches_tflm_and_c(tflite_model):
    """keras.applications.MobileNetV2(alpha=0.35) at 96x96 through the converter: 0 LSB against TFLM on every
    tensor, C == simulator on the host (no sanitizer build: the model is large) and on Cortex-M4."""
    graph = _check(tflite_model, "mobilenet_v2_035_96", sanitize=False, cortex_m4=True)
    names = [layer.op for layer in graph.layers]
    assert names.count("add") == 10 and names.count("depthwise_conv2d") == 17, names


def test_resnet8_matches_tflm_and_c(tflite_model):
    graph = _check(tflite_model, "resnet8", cortex_m4=True)
    assert [layer.op for layer in graph.layers].count("add") == 3


def test_rescaling_input_matches_tflm_and_c(tflite_model):
    """Keras Rescaling (per-channel scale, an offset) as the first layer, as the converter writes it (a MUL by a
    per-channel constant; the offset folded into the conv's bias)."""
    graph = _check(tflite_model, "rescaling_input", cortex_m4=True)
    assert graph.layers[0].op == "mul" and graph.layers[0].qconstant.shape == (3,)


def test_ds_cnn_kws_matches_tflm_and_c(tflite_model):
    graph = _check(tflite_model, "ds_cnn_kws")
    assert [layer.op for layer in graph.layers] == (
        ["conv2d"] + ["depthwise_conv2d", "conv2d"] * 4 + ["avg_pool2d", "reshape", "fully_connected", "softmax"])
    assert graph.layers[0].output_shape == (25, 5, 64)


def test_mobilenet_v1_025_matches_tflm_and_c(tflite_model):
    # ~7 s here; the sanitizer build is left to the smaller models.
    graph = _check(tflite_model, "mobilenet_v1_025_96", sanitize=False)
    assert sum(layer.op == "depthwise_conv2d" for layer in graph.layers) == 13


# --------------------------------------------------------- import details
def test_graph_metadata_and_source_indices(tflite_model):
    from sepgen.frontends import load

    path, _, model = tflite_model("pad_gap_dense_softmax")
    graph = load(path)
    ops = [layer.op for layer in graph.layers]
    assert ops == ["pad", "conv2d", "mean", "fully_connected", "fully_connected", "softmax"]
    assert all(spec.source_index is not None for spec in graph.tensors.values())
    assert len({spec.source_index for spec in graph.tensors.values()}) == len(graph.tensors)
    conv = graph.layers[1]
    assert conv.qkernel.shape == (8, 3, 3, 3) and conv.kernel.shape == (3, 3, 3, 8)  # OHWI / HWIO
    keras_kernel = model.layers[1].get_weights()[0]
    scale = np.abs(keras_kernel).max(axis=(0, 1, 2)) / 127
    assert np.all(np.abs(conv.kernel - keras_kernel) <= scale * 0.51 + 1e-7)  # dequantized = Keras +- 1/2 LSB
    assert conv.activation == "relu"
    assert graph.layers[0].paddings == ((1, 2), (0, 1), (0, 0))
    assert graph.layers[0].value == graph.tensors[graph.input].quant.zero_point
    assert graph.tensors[graph.output].quant.scale == np.float32(1 / 256)
    assert graph.tensors[graph.output].quant.zero_point == -128


def test_float_io_model_strips_quantize_dequantize(tflite_model, tmp_path):
    keras = require_module("keras")
    require_module("tflite_micro")
    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    L = keras.layers
    model = _seq(keras, (6, 6, 2), L.Conv2D(3, 3, activation="relu6"), L.GlobalAveragePooling2D(), L.Dense(4))
    _randomize(model, 5)
    data = representative((6, 6, 2), "normal", 32, 5)
    path = tmp_path / "float_io.tflite"
    path.write_bytes(convert(model, data, float_io=True))
    graph = load(path)
    assert [layer.op for layer in graph.layers] == ["conv2d", "mean", "fully_connected"]
    assert compare_with_tflm(graph, path, _inputs(graph, data)) is None


def test_mean_with_identical_quantization(tflite_model, tmp_path):
    """Older TFLM divided the raw sum (truncating) when MEAN's input and output quantization are equal;
    the current TFLM uses QuantizedMeanOrSum there too.  The converter never emits equal
    quantization, so the file is edited to force it."""
    from sepgen.frontends import load
    from sepgen.frontends.tflite import parse_model
    from sepgen.tflm import compare_with_tflm

    flatbuffers = require_module("flatbuffers")
    path, data, _ = tflite_model("input_negative")
    _, model = parse_model(path.read_bytes(), path)
    graph = load(path)
    mean = next(layer for layer in graph.layers if layer.op == "mean")
    src = model.subgraphs[0].tensors[graph.tensors[mean.inputs[0]].source_index].quantization
    dst = model.subgraphs[0].tensors[graph.tensors[mean.output].source_index].quantization
    dst.scale, dst.zeroPoint = list(src.scale), list(src.zeroPoint)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    edited = tmp_path / "mean_same_quant.tflite"
    edited.write_bytes(bytes(builder.Output()))
    graph = load(edited)
    mean = next(layer for layer in graph.layers if layer.op == "mean")
    assert graph.tensors[mean.inputs[0]].quant == graph.tensors[mean.output].quant
    inputs = _inputs(graph, data)
    assert compare_with_tflm(graph, edited, inputs) is None
    assert_c_matches(graph, inputs, sanitize=False)


def test_float_tflite_is_rejected(tmp_path):
    keras = require_module("keras")
    require_module("tflite_micro")
    import tensorflow as tf

    from sepgen.frontends import ModelFileError, load

    model = _seq(keras, (5, 5, 1), keras.layers.Conv2D(2, 3))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(ModelFileError, match="int8 model"):
        load(path)


def test_corrupt_and_truncated_files_name_the_file(tflite_model, tmp_path):
    require_module("tflite_micro")
    from sepgen.frontends import ModelFileError, load

    path, _, _ = tflite_model("input_wide")
    data = path.read_bytes()
    for label, content in [("garbage", b"not a flatbuffer at all"), ("truncated", data[: len(data) // 3])]:
        bad = tmp_path / f"{label}.tflite"
        bad.write_bytes(content)
        with pytest.raises(ModelFileError, match=label):
            load(bad)


def test_unsupported_op_is_named(tmp_path):
    keras = require_module("keras")
    require_module("tflite_micro")
    from sepgen.frontends import load
    from sepgen.ir import UnsupportedLayer

    L = keras.layers
    model = _seq(keras, (6, 6, 2), L.Conv2D(3, 3), L.Activation("tanh"))
    path = tmp_path / "tanh.tflite"
    path.write_bytes(convert(model, representative((6, 6, 2), "normal", 16, 3)))
    with pytest.raises(UnsupportedLayer, match="TANH"):
        load(path)


def test_cli_verify_tflite_checks_c_and_tflm(tflite_model, tmp_path):
    import subprocess
    import sys

    path, _, _ = tflite_model("residual_add")
    proc = subprocess.run([sys.executable, "-m", "sepgen.cli", "verify", str(path), "--count", "20"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "generated C == simulator, byte for byte, on 20 inputs" in proc.stdout
    assert "simulator == TFLite Micro on every tensor, 20 inputs" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sepgen.cli", "report", str(path), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert '"model"' in proc.stdout


def test_verify_says_why_tflm_is_not_the_oracle_for_a_lowered_dilation(tflite_model, capsys):
    from sepgen.cli import main

    path = tflite_model("dilated_lowered_valid")[0]
    assert main(["verify", str(path), "--count", "4"]) == 0
    captured = capsys.readouterr()
    assert "not compared with TFLite Micro" in captured.err and "batch_size=1" in captured.err
    assert "ok: generated C == simulator" in captured.out


@pytest.mark.parametrize("in_zp,out_scale,out_zp", [(-3, 0.05, -128), (20, 0.013, 5), (-128, 0.2, 127), (127, 0.03, -20)])
def test_standalone_relu_and_relu6_match_tflm_and_c(tmp_path, in_zp, out_scale, out_zp):
    """RELU (requantizing to its own output quantization) and RELU6 (a clamp in its input's quantization) as
    separate .tflite ops, written directly, 0 LSB against TFLM on every tensor and C == simulator."""
    require_module("tflite_micro")
    from tflite_build import FlatModel

    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm
    from sepgen.verification import random_inputs

    fm = FlatModel()
    x = fm.activation("x", (3, 5, 4), 0.04, in_zp)
    y = fm.activation("relu", (3, 5, 4), out_scale, out_zp)
    z = fm.activation("relu6", (3, 5, 4), out_scale, out_zp)
    fm.operator("RELU", [x], [y])
    fm.operator("RELU6", [y], [z])
    path = tmp_path / "relu.tflite"
    path.write_bytes(fm.finish([x], [z]))
    graph = load(path)
    assert [(layer.op, layer.activation) for layer in graph.layers] == [("relu", "relu"), ("relu", "relu6")]
    every_value = np.resize(np.arange(-128, 128, dtype=np.int8), (5, 3, 5, 4))  # each int8 value at least once
    inputs = np.concatenate([random_inputs(graph, 16), every_value])
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


def test_relu6_with_a_different_output_quantization_is_refused(tmp_path):
    require_module("tflite_micro")
    from tflite_build import FlatModel

    from sepgen.frontends import load
    from sepgen.ir import UnsupportedLayer

    fm = FlatModel()
    x = fm.activation("x", (4,), 0.04, 0)
    y = fm.activation("y", (4,), 0.05, 0)
    fm.operator("RELU6", [x], [y])
    path = tmp_path / "r6.tflite"
    path.write_bytes(fm.finish([x], [y]))
    with pytest.raises(UnsupportedLayer, match="RELU6 with different input and output quantization"):
        load(path)


def _one_op_matches_tflm_and_c(tmp_path, op: str, op_name: str, in_q: tuple[float, int], out_q: tuple[float, int],
                               options_type: str | None = None, options=None, shape=(3, 5, 4)) -> None:
    """A .tflite of one elementwise op written directly; sepgen reads it as ``op_name``, 0 LSB against TFLM on
    every int8 value, C == simulator."""
    require_module("tflite_micro")
    from tflite_build import FlatModel

    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    fm = FlatModel()
    x = fm.activation("x", shape, *in_q)
    y = fm.activation("y", shape, *out_q)
    fm.operator(op, [x], [y], options_type, options)
    path = tmp_path / f"{op.lower()}.tflite"
    path.write_bytes(fm.finish([x], [y]))
    graph = load(path)
    assert [layer.op for layer in graph.layers] == [op_name]
    inputs = _every_int8_value(graph, shape)
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


def _every_int8_value(graph, shape):
    """Random inputs plus every int8 value at least once (each position sees many values)."""
    from sepgen.verification import random_inputs

    every_value = np.resize(np.arange(-128, 128, dtype=np.int8), (5,) + shape)
    return np.concatenate([random_inputs(graph, 8), every_value])


@pytest.mark.parametrize("alpha,in_scale,in_zp,out_scale,out_zp", [
    (0.2, 0.04, -3, 0.03, -20), (0.01, 0.05, -128, 0.02, 127), (0.3, 0.02, 127, 0.05, -128),
    (1.7, 0.01, 10, 0.03, 3), (0.0, 0.04, 0, 0.04, 0), (0.125, 0.1, -60, 0.0007, 0)])
def test_standalone_leaky_relu_matches_tflm_and_c(tmp_path, alpha, in_scale, in_zp, out_scale, out_zp):
    """LEAKY_RELU written directly, 0 LSB against TFLM on every int8 value (including saturation at both ends
    and a slope above 1) and C == simulator."""
    require_module("tflite_micro")
    from tflite_build import _schema

    _one_op_matches_tflm_and_c(tmp_path, "LEAKY_RELU", "leaky_relu", (in_scale, in_zp), (out_scale, out_zp),
                               "LeakyReluOptions", _schema().LeakyReluOptionsT(alpha=alpha))


@pytest.mark.parametrize("in_scale,in_zp", [(0.04, -3), (0.1, -128), (0.02, 127), (0.003, 10), (0.5, 0), (3.0, -100)])
def test_standalone_logistic_matches_tflm_and_c(tmp_path, in_scale, in_zp):
    """LOGISTIC written directly (output 1/256, -128), 0 LSB against TFLM on every int8 value, C == simulator."""
    _one_op_matches_tflm_and_c(tmp_path, "LOGISTIC", "logistic", (in_scale, in_zp), (1.0 / 256.0, -128))


@pytest.mark.parametrize("in_scale,in_zp,out_scale,out_zp", [
    (0.04, -3, 0.03, -20), (0.05, -128, 0.02, 127), (0.02, 127, 0.05, -128), (0.003, 10, 0.002, -100),
    (0.5, 0, 0.3, -110), (3.0, -100, 2.0, -128), (0.1, 20, 0.0009, -128), (0.0004, -5, 0.0002, 0)])
def test_standalone_hard_swish_matches_tflm_and_c(tmp_path, in_scale, in_zp, out_scale, out_zp):
    """HARD_SWISH written directly, 0 LSB against TFLM on every int8 value (relu-ish rescale shifting left and
    right, saturation at both ends), C == simulator."""
    _one_op_matches_tflm_and_c(tmp_path, "HARD_SWISH", "hard_swish", (in_scale, in_zp), (out_scale, out_zp))


def _squeeze_excite_tflite(path, q: dict[str, tuple[float, int]], act: int, constant_first: bool) -> None:
    """x -> MEAN (keep dims) -> LOGISTIC -> MUL(x, gate) (a per-channel broadcast of two activations) -> ADD of a
    per-channel int8 constant -> MUL by a scalar constant -> ADD(., x) -> MUL by a (H, W, C) constant -> ADD with
    a (1, C) activation-shaped constant of zeros' broadcast; fused activation ``act`` on the binary ops."""
    from tflite_build import FlatModel, _schema

    s, fm, shape, c = _schema(), FlatModel(), (4, 3, 5), 5
    rng = np.random.default_rng(7)
    x = fm.activation("x", shape, *q["x"])
    axes = fm.constant("axes", np.array([1, 2], np.int32))
    mean = fm.activation("mean", (1, 1, c), *q["mean"])
    fm.operator("MEAN", [x, axes], [mean], "ReducerOptions", s.ReducerOptionsT(keepDims=True))
    gate = fm.activation("gate", (1, 1, c), 1.0 / 256.0, -128)
    fm.operator("LOGISTIC", [mean], [gate])
    se = fm.activation("se", shape, *q["se"])
    fm.operator("MUL", [gate, x] if constant_first else [x, gate], [se], "MulOptions",
                s.MulOptionsT(fusedActivationFunction=act))
    bias = fm.constant("bias", rng.integers(-128, 128, c).astype(np.int8), [q["bias"][0]],
                       zero_points=[q["bias"][1]])
    biased = fm.activation("biased", shape, *q["biased"])
    fm.operator("ADD", [bias, se] if constant_first else [se, bias], [biased], "AddOptions",
                s.AddOptionsT(fusedActivationFunction=act))
    k = fm.constant("k", np.array([rng.integers(-128, 128)], np.int8), [q["k"][0]], zero_points=[q["k"][1]])
    scaled = fm.activation("scaled", shape, *q["scaled"])
    fm.operator("MUL", [k, biased] if constant_first else [biased, k], [scaled], "MulOptions",
                s.MulOptionsT(fusedActivationFunction=0))
    res = fm.activation("res", shape, *q["res"])
    fm.operator("ADD", [scaled, x], [res], "AddOptions", s.AddOptionsT(fusedActivationFunction=act))
    full = fm.constant("full", rng.integers(-128, 128, (1,) + shape).astype(np.int8), [q["k"][0]],
                       zero_points=[q["k"][1]])
    y = fm.activation("y", shape, *q["y"])
    fm.operator("MUL", [res, full], [y], "MulOptions", s.MulOptionsT(fusedActivationFunction=0))
    path.write_bytes(fm.finish([x], [y]))


@pytest.mark.parametrize("case", [
    dict(act=0, constant_first=False, q={"x": (0.05, -3), "mean": (0.04, 2), "se": (0.03, -10), "bias": (0.02, 5),
                                         "biased": (0.04, -20), "k": (0.01, -7), "scaled": (0.003, 0),
                                         "res": (0.06, 4), "y": (0.002, -1)}),
    dict(act=1, constant_first=True, q={"x": (0.1, -128), "mean": (0.1, -100), "se": (0.02, -128), "bias": (0.5, 127),
                                        "biased": (0.3, -128), "k": (0.07, 100), "scaled": (0.9, -128),
                                        "res": (0.2, -128), "y": (0.05, 30)}),
    dict(act=3, constant_first=False, q={"x": (0.01, 127), "mean": (0.005, 90), "se": (0.0005, 0), "bias": (0.004, -128),
                                         "biased": (0.03, -128), "k": (2.0, 0), "scaled": (0.05, -128),
                                         "res": (0.02, -128), "y": (0.5, 0)}),
])
def test_squeeze_excite_mul_and_constant_add_match_tflm_and_c(tmp_path, case):
    """MUL with a broadcast per-channel gate (either operand order), ADD/MUL with per-channel, scalar and full
    int8 constants (first or second operand), fused RELU/RELU6: 0 LSB against TFLM on every tensor, C ==
    simulator."""
    require_module("tflite_micro")
    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    path = tmp_path / "se.tflite"
    _squeeze_excite_tflite(path, case["q"], case["act"], case["constant_first"])
    graph = load(path)
    assert [layer.op for layer in graph.layers] == ["mean", "reshape", "logistic", "mul", "add", "mul", "add", "mul"]
    assert graph.layers[4].constant is not None and graph.layers[6].constant is None
    inputs = _every_int8_value(graph, (4, 3, 5))
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


@pytest.mark.parametrize("axis", [3, -1, 1, 2, -3])
def test_concatenation_matches_tflm_and_c(tmp_path, axis):
    """CONCATENATION of three computed tensors sharing the output's quantization (as the converter writes it),
    along channels, rows or columns (axes counting the batch, also negative): 0 LSB against TFLM, C ==
    simulator; inputs quantized unlike the output are refused (TFLM would copy their bytes unchanged)."""
    require_module("tflite_micro")
    from tflite_build import FlatModel, _schema

    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    s, fm, q = _schema(), FlatModel(), (0.05, -7)
    x = fm.activation("x", (4, 3, 2), *q)
    parts = [x]
    for k, op in enumerate(("RELU", "MAX_POOL_2D")):
        t = fm.activation(f"p{k}", (4, 3, 2), *q)
        if op == "MAX_POOL_2D":
            fm.operator(op, [x], [t], "Pool2DOptions", s.Pool2DOptionsT(padding=s.Padding.SAME, strideW=1, strideH=1,
                                                                        filterWidth=2, filterHeight=2))
        else:
            fm.operator(op, [x], [t])
        parts.append(t)
    shape = [4, 3, 2]
    shape[axis % 4 - 1] *= 3
    y = fm.activation("y", tuple(shape), *q)
    fm.operator("CONCATENATION", parts, [y], "ConcatenationOptions", s.ConcatenationOptionsT(axis=axis))
    path = tmp_path / "cat.tflite"
    path.write_bytes(fm.finish([x], [y]))
    graph = load(path)
    assert [layer.op for layer in graph.layers][-1] == "concatenation"
    inputs = _every_int8_value(graph, (4, 3, 2))
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


def test_concatenation_of_differently_quantized_inputs_is_refused(tmp_path):
    from tflite_build import FlatModel, _schema

    from sepgen.frontends import load
    from sepgen.ir import UnsupportedLayer

    s, fm = _schema(), FlatModel()
    x = fm.activation("x", (4, 3, 2), 0.05, -7)
    r = fm.activation("r", (4, 3, 2), 0.02, -128)
    fm.operator("RELU", [x], [r])
    y = fm.activation("y", (4, 3, 4), 0.05, -7)
    fm.operator("CONCATENATION", [x, r], [y], "ConcatenationOptions", s.ConcatenationOptionsT(axis=3))
    path = tmp_path / "cat.tflite"
    path.write_bytes(fm.finish([x], [y]))
    with pytest.raises(UnsupportedLayer, match="CONCATENATION of inputs quantized unlike its output"):
        load(path)


def test_expand_dims_and_squeeze_are_reshapes(tmp_path):
    """A sequence (1, T, C) -> EXPAND_DIMS -> (1, 1, T, C) -> DEPTHWISE_CONV_2D -> SQUEEZE -> (1, T', C) -> MEAN over
    time, as the converter writes Conv1D: the reshapes cost nothing, 0 LSB against TFLM, C == simulator."""
    require_module("tflite_micro")
    from tflite_build import FlatModel, _schema

    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    s, fm, rng = _schema(), FlatModel(), np.random.default_rng(5)
    x = fm.activation("x", (9, 4), 0.05, -3)
    e = fm.activation("e", (1, 9, 4), 0.05, -3)
    fm.operator("EXPAND_DIMS", [x, fm.constant("axis", np.array([1], np.int32))], [e])
    w = fm.constant("w", rng.integers(-127, 128, (1, 1, 3, 4)).astype(np.int8), [0.01] * 4, dim=3)
    b = fm.constant("b", rng.integers(-500, 500, 4).astype(np.int32), [0.0005] * 4)
    d = fm.activation("d", (1, 7, 4), 0.04, 5)
    fm.operator("DEPTHWISE_CONV_2D", [e, w, b], [d], "DepthwiseConv2DOptions", s.DepthwiseConv2DOptionsT(
        padding=s.Padding.VALID, strideW=1, strideH=1, depthMultiplier=1, dilationWFactor=1, dilationHFactor=1))
    q = fm.activation("q", (7, 4), 0.04, 5)
    fm.operator("SQUEEZE", [d], [q], "SqueezeOptions", s.SqueezeOptionsT(squeezeDims=[1]))
    y = fm.activation("y", (4,), 0.03, -1)
    fm.operator("MEAN", [q, fm.constant("axes", np.array([1], np.int32))], [y], "ReducerOptions",
                s.ReducerOptionsT(keepDims=False))
    path = tmp_path / "squeeze.tflite"
    path.write_bytes(fm.finish([x], [y]))
    graph = load(path)
    assert [layer.op for layer in graph.layers] == ["reshape", "depthwise_conv2d", "reshape", "mean"]
    assert graph.tensors[graph.input].shape == (1, 9, 4)
    inputs = _every_int8_value(graph, (1, 9, 4))
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
def test_maximum_minimum_match_tflm_and_c(tmp_path, op):
    """MAXIMUM / MINIMUM of two activations, of a broadcast per-channel vector and of an int8 constant (first
    operand), all in the output's quantization: 0 LSB against TFLM, C == simulator; operands quantized otherwise
    are refused (TFLM compares raw values)."""
    require_module("tflite_micro")
    from tflite_build import FlatModel, _schema

    from sepgen.frontends import load
    from sepgen.ir import UnsupportedLayer
    from sepgen.tflm import compare_with_tflm

    s, q, rng = _schema(), (0.04, 3), np.random.default_rng(9)
    for relu_quant in (q, (0.02, -128)):
        fm = FlatModel()
        x = fm.activation("x", (4, 3, 5), *q)
        r = fm.activation("r", (4, 3, 5), *relu_quant)
        fm.operator("RELU", [x], [r])
        a = fm.activation("a", (4, 3, 5), *q)
        fm.operator(op, [x, r], [a])
        m = fm.activation("m", (1, 1, 5), *q)
        fm.operator("MEAN", [a, fm.constant("axes", np.array([1, 2], np.int32))], [m], "ReducerOptions",
                    s.ReducerOptionsT(keepDims=True))
        b = fm.activation("b", (4, 3, 5), *q)
        fm.operator(op, [m, a], [b])
        k = fm.constant("k", rng.integers(-128, 128, 5).astype(np.int8), [q[0]], zero_points=[q[1]])
        y = fm.activation("y", (4, 3, 5), *q)
        fm.operator(op, [k, b], [y])
        path = tmp_path / f"{op}.tflite"
        path.write_bytes(fm.finish([x], [y]))
        if relu_quant != q:
            with pytest.raises(UnsupportedLayer, match=f"{op} of operands quantized unlike its output"):
                load(path)
            continue
        graph = load(path)
        assert [layer.op for layer in graph.layers].count(op.lower()) == 3
        inputs = _every_int8_value(graph, (4, 3, 5))
        assert compare_with_tflm(graph, path, inputs) is None
        assert_c_matches(graph, inputs)


@pytest.mark.parametrize("align_corners,half_pixel_centers", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("out_hw", [(8, 6), (7, 10), (2, 3)])
def test_resize_nearest_neighbor_matches_tflm_and_c(tmp_path, align_corners, half_pixel_centers, out_hw):
    """RESIZE_NEAREST_NEIGHBOR of a 4x3 map to integer, fractional and smaller sizes, with TFLite's
    align_corners / half_pixel_centers rules: 0 LSB against TFLM, C == simulator."""
    require_module("tflite_micro")
    from tflite_build import FlatModel, _schema

    from sepgen.frontends import load
    from sepgen.tflm import compare_with_tflm

    s, fm, q = _schema(), FlatModel(), (0.05, -7)
    x = fm.activation("x", (4, 3, 2), *q)
    r = fm.activation("r", (4, 3, 2), *q)
    fm.operator("RELU", [x], [r])
    y = fm.activation("y", out_hw + (2,), *q)
    fm.operator("RESIZE_NEAREST_NEIGHBOR", [r, fm.constant("size", np.array(out_hw, np.int32))], [y],
                "ResizeNearestNeighborOptions", s.ResizeNearestNeighborOptionsT(
                    alignCorners=align_corners, halfPixelCenters=half_pixel_centers))
    path = tmp_path / "resize.tflite"
    path.write_bytes(fm.finish([x], [y]))
    graph = load(path)
    assert [layer.op for layer in graph.layers] == ["relu", "resize_nearest"]
    inputs = _every_int8_value(graph, (4, 3, 2))
    assert compare_with_tflm(graph, path, inputs) is None
    assert_c_matches(graph, inputs)


def test_reshape_tile_chains_other_than_upsampling_are_refused(tflite_model, tmp_path):
    """A RESHAPE -> TILE -> RESHAPE chain is read only when it is an integer nearest-neighbour upsampling: a tiling
    (the map repeated side by side) and a file whose TILE multiples disagree with its shapes get one clear line."""
    keras = require_module("keras")
    from sepgen.frontends import load
    from sepgen.ir import UnsupportedLayer

    L = keras.layers
    inp = keras.Input((4, 4, 3), batch_size=1)
    x = L.Reshape((4, 1, 4, 3))(L.Conv2D(3, 1)(inp))
    x = L.Lambda(lambda t: keras.ops.tile(t, (1, 1, 2, 1, 1)), output_shape=(4, 2, 4, 3))(x)
    model = keras.Model(inp, L.Conv2D(2, 1)(L.Reshape((4, 8, 3))(x)))  # output[y, x] = input[y, x % 4]
    path = tmp_path / "tiled.tflite"
    path.write_bytes(convert(model, representative((4, 4, 3), "normal", 16, 3)))
    assert "TILE" in _lowered_ops(path)
    with pytest.raises(UnsupportedLayer, match=r"RESHAPE/TILE chain.*not a nearest-neighbour upsampling by \(1, 2\)"):
        load(path)

    data = tflite_model("unet_small")[0].read_bytes()
    multiples = np.array([1, 1, 2, 1, 1], np.int32).tobytes()
    assert data.count(multiples) == 1
    bad = tmp_path / "bad_multiples.tflite"
    bad.write_bytes(data.replace(multiples, np.array([1, 1, 1, 1, 2], np.int32).tobytes()))
    with pytest.raises(UnsupportedLayer, match=r"TILE multiples \(1, 1, 1, 1, 2\) \(of \(1, 8, 1, 8, 12\) where the "
                       r"file has \(1, 8, 2, 8, 12\)\)") as info:
        load(bad)
    assert "\n" not in str(info.value)
