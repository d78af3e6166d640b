"""Keras frontend: in-memory models, .keras / .h5 files (Keras 3 and Keras 2) -> float Graph.

The oracle is Keras itself: ``model(x)`` (float) must equal ``sepgen.simulate.run_float`` on the
translated graph to ~1e-4 relative (unequal depthwise strides, which TensorFlow's CPU kernel refuses
on some CPUs, are computed with Keras's stride-1 op and subsampled: see ``keras_reference``).  Models are tiny so the whole file runs in seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest


def _need_keras():
    """TensorFlow/Keras 3: skip on a laptop without them, FAIL in CI (CI must run every test)."""
    try:
        import tensorflow  # noqa: F401  (the Keras backend the project uses)
        import keras
        import h5py
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"TensorFlow/Keras is required in CI but missing ({exc})", pytrace=False)
        pytest.skip(f"TensorFlow/Keras not available ({exc})", allow_module_level=True)
    return keras, h5py


keras, h5py = _need_keras()
L = keras.layers

from sepgen import ir  # noqa: E402
from sepgen.frontends import ModelFileError, load  # noqa: E402
from sepgen.frontends.keras import from_keras_model  # noqa: E402
from sepgen.frontends.keras_files import load_keras_file  # noqa: E402
from sepgen.ir import UnsupportedLayer  # noqa: E402
from sepgen.simulate import run_float  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


# ----------------------------------------------------------------------------- helpers
def randomize(model: "keras.Model", seed: int = 0) -> "keras.Model":
    """Give every weight random values (variances positive) so BN folding is really exercised."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        value = rng.normal(size=tuple(v.shape)) * 0.4
        if "variance" in v.path:
            value = rng.uniform(0.3, 2.0, size=tuple(v.shape))
        elif "gamma" in v.path:
            value = 1.0 + value
        v.assign(value.astype(np.float32))
    return model


def inputs_for(model: "keras.Model", n: int = 3, seed: int = 1) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n,) + shape).astype(np.float32)


def _unequal_strides(layer, replay_all: bool = False) -> bool:
    return isinstance(layer, L.DepthwiseConv2D) and (replay_all or layer.strides[0] != layer.strides[1])


def keras_reference(model: "keras.Model", x: np.ndarray, replay_all: bool = False) -> np.ndarray:
    """Keras's own float output, computed in a way every x86 CPU supports.

    TensorFlow's CPU ``DepthwiseConv2dNative`` refuses unequal strides unless oneDNN ops are on (they
    are off by default on some CPUs, and always with TF_ENABLE_ONEDNN_OPTS=0).  A 'valid'
    DepthwiseConv2D with strides (sy, sx) equals the same layer at stride 1, subsampled every sy-th
    row and sx-th column; so a Sequential model is replayed layer by layer with such layers run
    that way (Keras's depthwise op at stride 1, then its bias and activation).  Other models run as is.
    """
    if not any(_unequal_strides(layer, replay_all) for layer in model.layers):
        return keras.ops.convert_to_numpy(model(x, training=False))
    assert isinstance(model, keras.Sequential), "layer-by-layer replay needs a Sequential model"
    y = x
    for layer in model.layers:
        if not _unequal_strides(layer, replay_all):
            y = layer(y, training=False)
            continue
        assert layer.padding == "valid", "subsampling a stride-1 output equals strides only for 'valid'"
        sy, sx = layer.strides
        y = keras.ops.depthwise_conv(y, layer.kernel, strides=1, padding="valid",
                                     dilation_rate=layer.dilation_rate)[:, ::sy, ::sx, :]
        if layer.use_bias:
            y = y + layer.bias
        y = layer.activation(y)
    return keras.ops.convert_to_numpy(y)


def assert_same_as_keras(model: "keras.Model", graph: ir.Graph, n: int = 3) -> None:
    x = inputs_for(model, n)
    want = keras_reference(model, x)
    got = run_float(graph, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def ops(graph: ir.Graph) -> list[str]:
    return [layer.op for layer in graph.layers]


def sequential_model() -> "keras.Model":
    """Every sequential-friendly layer: BN folded, ReLU6, dm 2 + dilation 2, k x 1 then 1 x k, GAP, softmax."""
    model = keras.Sequential([
        keras.Input((11, 10, 3)),
        L.Conv2D(6, 3, padding="same", use_bias=False, name="conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(6.0, name="relu6"),
        L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2, padding="same", activation="relu", name="dw"),
        L.Conv2D(8, (3, 1), padding="same", name="k3x1"),
        L.Activation("relu", name="act"),
        L.Conv2D(8, (1, 3), padding="valid", activation="relu6", name="k1x3"),
        L.SeparableConv2D(8, 3, strides=2, padding="same", activation="relu", name="sep"),
        L.Dropout(0.5, name="drop"),
        L.SpatialDropout2D(0.2, name="sdrop"),
        L.GaussianNoise(0.3, name="noise"),
        L.MaxPooling2D(3, strides=1, padding="same", name="maxpool"),
        L.AveragePooling2D(2, padding="valid", name="avgpool"),
        L.DepthwiseConv2D((1, 2), strides=(1, 2), padding="valid", name="dw_stride"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(6, name="fc1"),
        L.BatchNormalization(name="bn_fc"),
        L.Activation("relu6", name="act6"),
        L.Dense(4, activation="softmax", name="fc2"),
    ], name="seq_all")
    return randomize(model)


def functional_model() -> "keras.Model":
    """Residual block (Add + ReLU), separable with depth_multiplier 2 and dilation, Reshape, Softmax."""
    inp = keras.Input((9, 9, 4), name="image")
    x = L.Conv2D(8, 1, activation="relu", name="expand")(inp)
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="block_dw")(x)
    y = L.BatchNormalization(name="block_dw_bn")(y)
    y = L.ReLU(name="block_dw_relu")(y)
    y = L.Conv2D(8, 1, use_bias=False, name="block_pw")(y)
    y = L.BatchNormalization(name="block_pw_bn", center=False)(y)
    z = L.Add(name="residual")([x, y])
    z = L.ReLU(name="residual_relu")(z)
    z = L.SeparableConv2D(4, 3, depth_multiplier=2, dilation_rate=2, use_bias=False, name="sep")(z)
    z = L.AveragePooling2D(2, strides=1, padding="same", name="avgpool")(z)
    z = L.Reshape((5, 10, 2), name="reshape")(z)
    z = L.GlobalAveragePooling2D(keepdims=True, name="gap")(z)
    z = L.Reshape((-1,), name="flat")(z)
    z = L.Dense(3, name="logits")(z)
    z = L.Softmax(name="probs")(z)
    return randomize(keras.Model(inp, z, name="func_res"), seed=2)


# ----------------------------------------------------------------------------- in-memory models
def test_sequential_every_layer_matches_keras():
    model = sequential_model()
    graph = from_keras_model(model)
    assert graph.name == "seq_all" and graph.source == "<keras model seq_all>" and graph.source_sha256 == ""
    assert ops(graph) == ["conv2d", "depthwise_conv2d", "conv2d", "conv2d", "depthwise_conv2d", "conv2d",
                          "max_pool2d", "avg_pool2d", "depthwise_conv2d", "mean", "fully_connected",
                          "fully_connected", "softmax"]
    conv, dw = graph.layer("conv"), graph.layer("dw")
    assert conv.output == "relu6"  # BN folded into the conv and ReLU6 fused: the output is the last layer's
    assert conv.activation == "relu6" and conv.bias is not None and conv.kernel.shape == (3, 3, 3, 6)
    assert dw.depth_multiplier == 2 and dw.dilation == (2, 2) and dw.output_shape == (11, 10, 12)
    assert graph.layer("k3x1").kernel.shape == (3, 1, 12, 8) and graph.layer("k3x1").activation == "relu"
    assert graph.layer("k1x3").kernel.shape == (1, 3, 8, 8) and graph.layer("k1x3").output_shape == (11, 8, 8)
    assert graph.layer("sep/depthwise").bias is None and graph.layer("sep/pointwise").activation == "relu"
    assert graph.layer("dw_stride").strides == (1, 2)
    assert graph.layer("fc1").activation == "relu6" and graph.layer("fc1").output == "act6"
    assert graph.layer("fc2/softmax").op == "softmax"
    assert sum(layer.params() for layer in graph.layers) == model.count_params()  # folded BN still counted
    assert_same_as_keras(model, graph)


def test_strided_depthwise_replay_equals_keras():
    """The CPU-independent reference (stride 1, then subsample) equals Keras where TF runs the strides."""
    model = randomize(keras.Sequential([keras.Input((9, 11, 3)), L.Conv2D(4, 1, name="c"),
                                        L.DepthwiseConv2D((3, 2), strides=2, depth_multiplier=2, activation="relu",
                                                          name="dw")]))
    x = inputs_for(model, 2)
    np.testing.assert_allclose(keras_reference(model, x, replay_all=True),
                               keras.ops.convert_to_numpy(model(x, training=False)), rtol=RTOL, atol=ATOL)


def test_functional_residual_matches_keras():
    model = functional_model()
    graph = load(model)  # the registry's in-memory path
    assert graph.source == "<keras model func_res>"
    add = graph.layer("residual")
    assert add.op == "add" and add.activation == "relu" and len(add.inputs) == 2
    assert graph.layer("expand").output in add.inputs  # the skip connection
    assert graph.layer("block_pw").output == "block_pw_bn" and graph.layer("block_dw").activation == "relu"
    sep_dw = graph.layer("sep/depthwise")
    assert sep_dw.depth_multiplier == 2 and sep_dw.dilation == (2, 2) and sep_dw.output_shape == (5, 5, 16)
    assert graph.layer("sep/pointwise").bias is None
    assert ops(graph) == ["conv2d", "depthwise_conv2d", "conv2d", "add", "depthwise_conv2d", "conv2d",
                          "avg_pool2d", "reshape", "mean", "reshape", "reshape", "fully_connected", "softmax"]
    assert_same_as_keras(model, graph)


def test_nested_models_are_inlined_and_shared_layers_renamed():
    block = keras.Sequential([keras.Input((6, 6, 4)), L.DepthwiseConv2D(3, padding="same", name="dw"),
                              L.ReLU(name="relu")], name="block")
    shared = L.Conv2D(4, 1, name="shared")
    inp = keras.Input((6, 6, 4))
    x = shared(block(inp))
    x = shared(x)  # the same layer called twice
    model = randomize(keras.Model(inp, L.GlobalAveragePooling2D(name="gap")(x), name="nested"), seed=3)
    graph = from_keras_model(model, name="renamed")
    assert graph.name == "renamed"
    names = [layer.name for layer in graph.layers]
    assert names == ["block/dw", "shared", "shared_2", "gap"]
    assert_same_as_keras(model, graph)


# ----------------------------------------------------------------------------- unsupported input
def _seq(*layers, shape=(8, 8, 4), name="bad"):
    return keras.Sequential([keras.Input(shape), *layers], name=name)


class _MyConv(L.Conv2D):
    """A user subclass (may override call): never mistaken for a built-in Conv2D."""


UNSUPPORTED = {
    "Conv2DTranspose": (lambda: _seq(L.Conv2DTranspose(4, 3, name="up")), "up", "Conv2DTranspose"),
    "LSTM": (lambda: _seq(L.LSTM(4, name="lstm"), shape=(5, 3)), "lstm", "LSTM"),
    "Conv1D causal": (lambda: _seq(L.Conv1D(4, 3, padding="causal", name="c1d"), shape=(8, 3)), "c1d", "Conv1D"),
    "UpSampling1D": (lambda: _seq(L.UpSampling1D(name="up"), shape=(8, 3)), "up", "UpSampling1D"),
    "GlobalMaxPooling2D": (lambda: _seq(L.GlobalMaxPooling2D(name="gmp")), "gmp", "GlobalMaxPooling2D"),
    "Lambda": (lambda: _seq(L.Conv2D(4, 1), L.Lambda(lambda t: t * 2, name="lam")), "lam", "Lambda"),
    "subclass": (lambda: _seq(_MyConv(4, 1, name="mine")), "mine", "_MyConv"),
    "leaky ReLU layer": (lambda: _seq(L.Conv2D(4, 1), L.ReLU(negative_slope=0.1, name="leaky")), "leaky",
                         "ReLU(max_value=None, negative_slope=0.1"),
    "ReLU max 4": (lambda: _seq(L.Conv2D(4, 1), L.ReLU(4.0, name="r4")), "r4", "ReLU(max_value=4.0"),
    "ReLU threshold": (lambda: _seq(L.Conv2D(4, 1), L.ReLU(threshold=0.5, name="rt")), "rt", "threshold=0.5"),
    "tanh activation": (lambda: _seq(L.Conv2D(4, 1, activation="tanh", name="c")), "c",
                        "activation 'tanh'"),
    "softmax after conv": (lambda: _seq(L.Conv2D(4, 1, activation="softmax", name="c")), "c",
                           "activation 'softmax'"),
    "Activation gelu": (lambda: _seq(L.Conv2D(4, 1), L.Activation("gelu", name="a")), "a", "activation 'gelu'"),
    "grouped conv": (lambda: _seq(L.Conv2D(4, 3, groups=2, name="g")), "g", "groups=2"),
    "BN channel axis 1": (lambda: _seq(L.Conv2D(4, 1), L.BatchNormalization(axis=1, name="bn1")), "bn1",
                          "axis=1"),
    "BN without a producer": (lambda: _seq(L.BatchNormalization(name="bn0")), "bn0", "BatchNormalization"),
    "softmax on a feature map": (lambda: _seq(L.Conv2D(4, 1), L.Softmax(name="sm")), "sm", "Softmax"),
    "channels_first": (lambda: _seq(L.MaxPooling2D(data_format="channels_first", name="cf")), "cf",
                       "channels_first"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_layer_is_named(case):
    make, layer_name, text = UNSUPPORTED[case]
    with pytest.raises(UnsupportedLayer) as info:
        from_keras_model(make())
    assert info.value.name == layer_name, str(info.value)
    assert text in str(info.value)


def test_keras_ops_on_tensors_are_refused():
    inp = keras.Input((4, 4, 2))
    a, b = L.Conv2D(2, 1, name="a")(inp), L.Conv2D(2, 1, name="b")(inp)
    model = keras.Model(inp, a + b)
    with pytest.raises(UnsupportedLayer, match="keras.ops operation 'Add'"):
        from_keras_model(model)


def test_model_without_input_or_with_two_inputs():
    with pytest.raises(UnsupportedLayer, match="no defined input"):
        from_keras_model(keras.Sequential([L.Dense(3)], name="unbuilt"))
    i1, i2 = keras.Input((4,)), keras.Input((4,))
    with pytest.raises(UnsupportedLayer, match="2 inputs"):
        from_keras_model(keras.Model([i1, i2], L.Add()([L.Dense(2)(i1), L.Dense(2)(i2)])))
    with pytest.raises(TypeError):
        from_keras_model(object())


# ----------------------------------------------------------------------------- Keras 3 files
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_file_round_trip(tmp_path, suffix):
    model = functional_model()
    path = tmp_path / f"res{suffix}"
    model.save(path)
    graph = load(path)
    assert graph.source == path.name
    assert graph.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert graph.name == "func_res" and load_keras_file(path, name="other").name == "other"
    assert_same_as_keras(model, graph)


def test_sequential_file_round_trip(tmp_path):
    model = sequential_model()
    path = tmp_path / "seq.keras"
    model.save(path)
    assert_same_as_keras(model, load(path))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_in_file_refused_before_loading(tmp_path, suffix):
    model = _seq(L.Conv2D(4, 1), L.Lambda(lambda t: t * 2, name="lam"))
    path = tmp_path / f"lam{suffix}"
    model.save(path)
    with pytest.raises(UnsupportedLayer) as info:
        load(path)
    assert info.value.name == "lam" and str(info.value).startswith(f"{path}: layer 'lam': unsupported Lambda")


def test_unsupported_layer_in_file_names_file_and_layer(tmp_path):
    path = tmp_path / "up.keras"
    _seq(L.Conv2DTranspose(4, 3, name="up")).save(path)
    with pytest.raises(UnsupportedLayer) as info:
        load(path)
    assert info.value.name == "up" and info.value.kind == "Conv2DTranspose"
    assert str(info.value).startswith(f"{path}: layer 'up'")


# ----------------------------------------------------------------------------- Keras 2 .h5
# A Keras-2 file written with h5py in exactly the layout tf.keras 2.x / tf_keras writes
# (hdf5_format.save_model_to_hdf5): root attrs keras_version/backend (str) and model_config
# (JSON, utf-8 bytes); group model_weights with attrs layer_names/backend/keras_version, one
# group per layer (sorted by name) with attr weight_names ("layer/var:0", bytes) and the datasets
# at those relative paths; weights in trainable + non-trainable order.  (tf_keras 2.21 needs the
# full `tensorflow` wheel, which would replace tensorflow-cpu; the layout was checked against a
# file it wrote.)
_GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
           "registered_name": None}
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
_ONES = {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": None}
_CONV_COMMON = {"padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                "strides": [1, 1], "activation": "linear", "use_bias": True, "bias_initializer": _ZEROS,
                "bias_regularizer": None, "activity_regularizer": None, "bias_constraint": None}


def _k2_layer(cls: str, name: str, inbound: list[str], **config) -> dict:
    return {"class_name": cls, "config": {"name": name, "trainable": True, "dtype": "float32", **config},
            "name": name, "inbound_nodes": [[[src, 0, 0, {}] for src in inbound]] if inbound else []}


def keras2_config() -> dict:
    """A Keras-2 functional model_config: conv-BN-ReLU6, depthwise (dm 2) + BN, separable, Add, GAP, Dense."""
    layers = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        _k2_layer("Conv2D", "conv", ["input_1"], filters=4, kernel_size=[3, 3],
                  **{**_CONV_COMMON, "use_bias": False}, kernel_initializer=_GLOROT, kernel_regularizer=None,
                  kernel_constraint=None),
        _k2_layer("BatchNormalization", "bn", ["conv"], axis=[3], momentum=0.99, epsilon=0.001, center=True,
                  scale=True, beta_initializer=_ZEROS, gamma_initializer=_ONES, moving_mean_initializer=_ZEROS,
                  moving_variance_initializer=_ONES, beta_regularizer=None, gamma_regularizer=None,
                  beta_constraint=None, gamma_constraint=None),
        _k2_layer("ReLU", "relu6", ["bn"], max_value=6.0, negative_slope=0.0, threshold=0.0),
        _k2_layer("DepthwiseConv2D", "dw", ["relu6"], kernel_size=[3, 3], **_CONV_COMMON, depth_multiplier=2,
                  depthwise_initializer=_GLOROT, depthwise_regularizer=None, depthwise_constraint=None),
        _k2_layer("BatchNormalization", "dw_bn", ["dw"], axis=[3], momentum=0.99, epsilon=0.001, center=True,
                  scale=True, beta_initializer=_ZEROS, gamma_initializer=_ONES, moving_mean_initializer=_ZEROS,
                  moving_variance_initializer=_ONES, beta_regularizer=None, gamma_regularizer=None,
                  beta_constraint=None, gamma_constraint=None),
        _k2_layer("Activation", "dw_relu", ["dw_bn"], activation="relu"),
        _k2_layer("SeparableConv2D", "sep", ["dw_relu"], filters=4, kernel_size=[3, 3], **_CONV_COMMON,
                  kernel_initializer=_GLOROT, kernel_regularizer=None, kernel_constraint=None, depth_multiplier=1,
                  depthwise_initializer=_GLOROT, pointwise_initializer=_GLOROT, depthwise_regularizer=None,
                  pointwise_regularizer=None, depthwise_constraint=None, pointwise_constraint=None),
        _k2_layer("Add", "add", ["relu6", "sep"]),
        _k2_layer("GlobalAveragePooling2D", "gap", ["add"], data_format="channels_last", keepdims=False),
        _k2_layer("Dropout", "drop", ["gap"], rate=0.2, noise_shape=None, seed=None),
        _k2_layer("Dense", "fc", ["drop"], units=3, activation="softmax", use_bias=True,
                  kernel_initializer=_GLOROT, bias_initializer=_ZEROS, kernel_regularizer=None,
                  bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None),
    ]
    return {"class_name": "Functional",
            "config": {"name": "k2net", "trainable": True, "layers": layers,
                       "input_layers": [["input_1", 0, 0]], "output_layers": [["fc", 0, 0]]}}


def keras2_weights(seed: int = 5) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per layer: (Keras-2 weight name, value) in the order Keras 2 saves them."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return (rng.normal(size=shape) * 0.4).astype(np.float32)

    def bn(name, c):
        return [(f"{name}/gamma:0", 1 + r(c)), (f"{name}/beta:0", r(c)), (f"{name}/moving_mean:0", r(c)),
                (f"{name}/moving_variance:0", rng.uniform(0.3, 2, c).astype(np.float32))]

    return {
        "input_1": [], "relu6": [], "dw_relu": [], "add": [], "gap": [], "drop": [],
        "conv": [("conv/kernel:0", r(3, 3, 3, 4))],
        "bn": bn("bn", 4),
        "dw": [("dw/depthwise_kernel:0", r(3, 3, 4, 2)), ("dw/bias:0", r(8))],
        "dw_bn": bn("dw_bn", 8),
        "sep": [("sep/depthwise_kernel:0", r(3, 3, 8, 1)), ("sep/pointwise_kernel:0", r(1, 1, 8, 4)),
                ("sep/bias:0", r(4))],
        "fc": [("fc/kernel:0", r(4, 3)), ("fc/bias:0", r(3))],
    }


def write_keras2_h5(path: Path, config: dict, weights: dict[str, list[tuple[str, np.ndarray]]],
                    version: str = "2.15.0") -> Path:
    """Write ``path`` as tf.keras ``model.save('x.h5')`` does (same h5py calls, same attribute types)."""
    layer_names = [layer["config"]["name"] for layer in config["config"]["layers"]]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode("utf8") for n in layer_names]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = version.encode("utf8")
        for name in sorted(layer_names):
            g = root.create_group(name)
            entries = weights.get(name, [])
            g.attrs["weight_names"] = [w.encode("utf8") for w, _ in entries] if entries else np.asarray([])
            for wname, value in entries:
                g.create_dataset(wname, value.shape, dtype=value.dtype)[:] = value
        root.create_group("top_level_model_weights").attrs["weight_names"] = np.asarray([])
    return path


def keras3_twin(weights: dict[str, list[tuple[str, np.ndarray]]], residual: bool = True) -> "keras.Model":
    """The same network built in Keras 3 with the same weights: the float oracle."""
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inp)
    x = L.ReLU(6.0)(L.BatchNormalization(name="bn")(x))
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = L.Activation("relu")(L.BatchNormalization(name="dw_bn")(y))
    y = L.SeparableConv2D(4, 3, padding="same", name="sep")(y)
    z = L.GlobalAveragePooling2D()(L.Add()([x, y]) if residual else y)
    model = keras.Model(inp, L.Dense(3, activation="softmax", name="fc")(z))
    for name, entries in weights.items():
        if entries:
            model.get_layer(name).set_weights([value for _, value in entries])
    return model


def test_keras2_h5_with_depthwise_separable_and_batchnorm(tmp_path):
    weights = keras2_weights()
    path = write_keras2_h5(tmp_path / "k2.h5", keras2_config(), weights)
    with pytest.raises(Exception, match="groups"):  # what this path exists for
        keras.saving.load_model(path, compile=False, safe_mode=True)
    graph = load(path)
    assert graph.name == "k2net" and graph.source == "k2.h5"
    assert graph.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ops(graph) == ["conv2d", "depthwise_conv2d", "depthwise_conv2d", "conv2d", "add", "mean",
                          "fully_connected", "softmax"]
    assert graph.layer("conv").activation == "relu6" and graph.layer("dw").depth_multiplier == 2
    assert_same_as_keras(keras3_twin(weights), graph)


def test_keras2_sequential_h5(tmp_path):
    config = keras2_config()
    layers = [dict(layer) for layer in config["config"]["layers"] if layer["class_name"] != "Add"]
    for layer in layers:
        layer.pop("inbound_nodes"), layer.pop("name")
    seq = {"class_name": "Sequential", "config": {"name": "k2seq", "layers": layers}}
    weights = keras2_weights(seed=6)
    graph = load(write_keras2_h5(tmp_path / "k2seq.hdf5", seq, weights))
    assert graph.name == "k2seq" and ops(graph)[1:4] == ["depthwise_conv2d", "depthwise_conv2d", "conv2d"]
    twin = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same", use_bias=False, name="conv"),
                             L.BatchNormalization(name="bn"), L.ReLU(6.0),
                             L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw"),
                             L.BatchNormalization(name="dw_bn"), L.ReLU(),
                             L.SeparableConv2D(4, 3, padding="same", name="sep"), L.GlobalAveragePooling2D(),
                             L.Dense(3, activation="softmax", name="fc")])
    for name, entries in weights.items():
        if entries:
            twin.get_layer(name).set_weights([value for _, value in entries])
    assert_same_as_keras(twin, graph)


def test_keras2_h5_nested_sequential(tmp_path):
    """A nested Sequential (transfer-learning style): Keras 2 numbers its calls from node 1, BN axis is [3]."""
    w, by_name = keras2_weights(seed=7), {e["name"]: e for e in keras2_config()["config"]["layers"]}
    block_input = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 4], "dtype": "float32",
                                                          "sparse": False, "ragged": False, "name": "block_in"}}
    block_layers = [block_input] + [{"class_name": by_name[n]["class_name"], "config": by_name[n]["config"]}
                                    for n in ("dw", "dw_bn", "dw_relu")]
    layers = [by_name[n] for n in ("input_1", "conv", "bn", "relu6")] + [
        {"class_name": "Sequential", "config": {"name": "block", "layers": block_layers}, "name": "block",
         "inbound_nodes": [[["relu6", 0, 0, {}]]]},
        {**by_name["sep"], "inbound_nodes": [[["block", 1, 0, {}]]]},
        {**by_name["gap"], "inbound_nodes": [[["sep", 0, 0, {}]]]},
        {**by_name["fc"], "inbound_nodes": [[["gap", 0, 0, {}]]]},
    ]
    config = {"class_name": "Functional", "config": {"name": "k2nested", "trainable": True, "layers": layers,
                                                     "input_layers": [["input_1", 0, 0]],
                                                     "output_layers": [["fc", 0, 0]]}}
    weights = {"conv": w["conv"], "bn": w["bn"], "block": w["dw"] + w["dw_bn"], "sep": w["sep"], "fc": w["fc"]}
    graph = load(write_keras2_h5(tmp_path / "nested.h5", config, weights))
    assert [layer.name for layer in graph.layers][:3] == ["conv", "block/dw", "sep/depthwise"]
    assert_same_as_keras(keras3_twin(w, residual=False), graph)


def test_keras2_h5_lambda_and_bad_weights(tmp_path):
    config = keras2_config()
    lam = _k2_layer("Lambda", "lam", ["drop"], function=["4wEAAAAA", None, None], function_type="lambda",
                    module="__main__")  # marshalled bytecode in a real file: must never be deserialized
    config["config"]["layers"].insert(-1, lam)
    with pytest.raises(UnsupportedLayer) as info:
        load(write_keras2_h5(tmp_path / "lam.h5", config, keras2_weights()))
    assert info.value.name == "lam" and info.value.kind == "Lambda"
    weights = keras2_weights()
    weights["fc"] = [("fc/kernel:0", np.zeros((5, 3), np.float32)), weights["fc"][1]]
    with pytest.raises(ModelFileError, match=r"layer 'fc': weight 'fc/kernel:0' has shape \(5, 3\)"):
        load(write_keras2_h5(tmp_path / "shape.h5", keras2_config(), weights))


# ----------------------------------------------------------------------------- unreadable files
def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def _corrupt_cases(tmp_path: Path) -> dict[str, Path]:
    """name -> a file that is not a readable Keras model."""
    good_h5, good_keras, weights_only = tmp_path / "good.h5", tmp_path / "good.keras", tmp_path / "w.weights.h5"
    model = _seq(L.Conv2D(2, 1))
    model.save(good_h5)
    model.save(good_keras)
    model.save_weights(weights_only)
    cases = {
        "garbage.keras": b"not a model at all" * 10,
        "garbage.h5": b"not a model at all" * 10,
        "empty.keras": b"",
        "truncated.h5": good_h5.read_bytes()[:600],
        "truncated.keras": good_keras.read_bytes()[:-200],
        "h5_named.keras": good_h5.read_bytes(),
        "weights_only.h5": weights_only.read_bytes(),
        "zip_named.h5": _zip({"config.json": "{}"}),
        "no_config.keras": _zip({"metadata.json": "{}"}),
        "bad_json.keras": _zip({"config.json": "{not json"}),
        "not_a_model.keras": _zip({"config.json": '{"class_name": "Dense", "config": {}}'}),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in cases}


def test_corrupt_files_give_one_line_model_file_error(tmp_path):
    for name, path in _corrupt_cases(tmp_path).items():
        with pytest.raises(ModelFileError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400, (name, message)


def test_missing_file_and_bad_option(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "missing.keras")
    path = tmp_path / "m.keras"
    _seq(L.Conv2D(2, 1)).save(path)
    with pytest.raises(TypeError, match="option"):
        load_keras_file(path, calibration=None)


def test_params_count_like_keras_after_batchnorm_folding():
    """BatchNormalization is folded into the conv, but params still count as Keras count_params() does."""
    import sepgen

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    x = keras.layers.BatchNormalization(center=False)(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=True)(x)
    x = keras.layers.BatchNormalization(scale=False)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4)(x)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, x)
    graph = from_keras_model(model)
    assert sepgen.budget(graph).totals.params == model.count_params()


def test_zero_padding_then_valid_conv():
    inputs = keras.Input((7, 6, 2))
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(inputs)
    x = L.DepthwiseConv2D(3)(x)
    model = keras.Model(inputs, x)
    graph = from_keras_model(model)
    assert [layer.op for layer in graph.layers] == ["pad", "depthwise_conv2d"]
    x = np.random.default_rng(0).normal(size=(4, 7, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), np.asarray(model(x)), rtol=RTOL, atol=ATOL)


def test_leaky_relu_is_an_op_of_its_own():
    model = randomize(keras.Sequential([keras.Input((6, 5, 3)), L.Conv2D(4, 3, name="conv"),
                                        L.LeakyReLU(negative_slope=0.15, name="leaky")], name="leaky"))
    graph = load(model)
    assert ops(graph) == ["conv2d", "leaky_relu"] and graph.layers[1].alpha == pytest.approx(0.15)
    x = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_hard_swish_activation_layer_and_fused_argument():
    """Activation("hard_swish") and Conv2D(activation="hard_silu"): a hard_swish op of its own after the conv."""
    model = randomize(keras.Sequential([keras.Input((6, 5, 3)), L.Conv2D(4, 3, activation="hard_silu", name="conv"),
                                        L.Flatten(name="fl"), L.Dense(5, name="fc"), L.Activation("hard_swish", name="hs")], name="hs"))
    graph = load(model)
    assert ops(graph) == ["conv2d", "hard_swish", "reshape", "fully_connected", "hard_swish"]
    assert [layer.name for layer in graph.layers] == ["conv", "conv/hard_swish", "fl", "fc", "hs"]
    x = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32) * 3
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_squeeze_excite_multiply():
    """MobileNetV3's squeeze-excite: GlobalAveragePooling2D(keepdims) -> 1x1 convs -> hard_swish / sigmoid ->
    Multiply with the feature map (a per-channel broadcast), in either operand order."""
    inp = keras.Input((6, 5, 4))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    g = L.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    g = L.Conv2D(2, 1, activation="relu", name="squeeze")(g)
    g = L.Conv2D(4, 1, activation="sigmoid", name="excite")(g)
    y = L.Multiply(name="se")([x, g])
    h = L.Conv2D(4, 1, activation="hard_sigmoid", name="excite2")(L.GlobalAveragePooling2D(keepdims=True, name="gap2")(y))
    y = L.Multiply(name="se2")([h, y])
    model = randomize(keras.Model(inp, y, name="se"))
    graph = load(model)
    assert ops(graph)[-4:] == ["conv2d", "add", "mul", "mul"] and graph.layers[-1].output_shape == (6, 5, 4)
    x = np.random.default_rng(0).normal(size=(3, 6, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_concatenate_along_channels_and_width():
    inp = keras.Input((6, 5, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inp)
    b = L.Conv2D(2, 1, name="b")(inp)
    x = L.Concatenate(name="cat")([a, b, inp])
    y = L.Concatenate(axis=-2, name="cat_w")([x, L.MaxPooling2D(2, 1, "same", name="mp")(x)])
    model = randomize(keras.Model(inp, y, name="cat"))
    graph = load(model)
    assert graph.layer("cat").output_shape == (6, 5, 9) and graph.layer("cat_w").output_shape == (6, 10, 9)
    x = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_one_d_layers_are_rows_of_a_2d_map():
    """Conv1D, SeparableConv1D, DepthwiseConv1D (stride, dilation), 1-D pooling/padding and a 2-D Reshape: a
    sequence (T, C) is read as (1, T, C), each layer as its 2-D counterpart with a (1, k) window."""
    model = randomize(keras.Sequential([
        keras.Input((40, 3)), L.Conv1D(8, 5, strides=2, activation="relu", name="c1"),
        L.SeparableConv1D(12, 3, padding="same", depth_multiplier=2, activation="relu", name="sep"),
        L.MaxPooling1D(2, name="mp"), L.ZeroPadding1D((1, 2), name="zp"),
        L.DepthwiseConv1D(3, dilation_rate=2, name="dw"), L.AveragePooling1D(2, 1, "same", name="ap"),
        L.Reshape((-1, 6), name="rs"), L.Conv1D(4, 1, name="pw"), L.GlobalAveragePooling1D(name="gap"),
        L.Dense(3, activation="softmax", name="fc")], name="har"))
    graph = load(model)
    assert graph.tensors[graph.input].shape == (1, 40, 3)
    assert graph.layer("c1").kernel_size == (1, 5) and graph.layer("c1").strides == (1, 2)
    assert graph.layer("dw").dilation == (1, 2) and graph.layer("sep/depthwise").output_shape == (1, 18, 16)
    assert graph.layer("rs").output_shape == (1, 16, 6)
    x = np.random.default_rng(0).normal(size=(3, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x[:, None]), model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_causal_conv1d_is_refused():
    model = keras.Sequential([keras.Input((10, 2)), L.Conv1D(3, 3, padding="causal", name="causal")])
    with pytest.raises(UnsupportedLayer, match="layer 'causal': unsupported Conv1D\\(padding='causal'\\)"):
        load(model)


def test_maximum_minimum_layers():
    inp = keras.Input((6, 5, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inp)
    b = L.Conv2D(4, 1, name="b")(inp)
    y = L.Minimum(name="lo")([L.Maximum(name="hi")([a, b]), L.GlobalAveragePooling2D(keepdims=True, name="g")(a)])
    model = randomize(keras.Model(inp, y, name="mm"))
    graph = load(model)
    assert ops(graph).count("maximum") == ops(graph).count("minimum") == 1
    x = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("scale,offset,expect", [
    (1 / 255, 0.0, ["rescaling"]), (1 / 127.5, -1.0, ["rescaling"]), (1.0, 3.0, ["rescaling"]),
    ([0.5, 0.5, 0.5], -1.0, ["rescaling"]),  # one value repeated per channel: a scalar
    ([0.5, 2.0, 1.0], [0.1, 0.0, -0.2], ["mul", "add"]), (1 / 255, [0.0, 0.1, 0.2], ["mul", "add"]),
    (-1 / 255, 0.0, ["mul"]),  # a negative scale reverses the order of the values: not a quantization
])
def test_rescaling_first_is_folded_or_a_constant_multiply_and_add(scale, offset, expect):
    """Rescaling as the first layer (e.g. images 0..255 -> [-1, 1]) with a scalar scale > 0 and a scalar offset is
    folded into the input quantization (a `rescaling` layer, no code); any other is TFLite's MUL/ADD of constants."""
    model = randomize(keras.Sequential([keras.Input((6, 5, 3)), L.Rescaling(scale, offset, name="rs"),
                                        L.Conv2D(4, 3, name="conv")], name="rescale"))
    graph = load(model)
    assert ops(graph) == expect + ["conv2d"]
    assert graph.layers[0].aliases_input == (expect == ["rescaling"])
    x = np.random.default_rng(0).uniform(0, 255, size=(3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL * 100)


def test_rescaling_after_the_input_is_a_constant_multiply_and_add():
    """Only a Rescaling that reads the model input is folded (the quantizer chooses only the input's quantization);
    a second one on the same input is not (one input quantization cannot serve both)."""
    inp = keras.Input((6, 5, 3))
    a = L.Rescaling(1 / 255, name="first")(inp)
    b = L.Rescaling(1 / 127.5, -1.0, name="second")(inp)
    y = L.Rescaling(0.5, name="deep")(L.Conv2D(4, 3, name="conv")(L.Add(name="sum")([a, b])))
    model = randomize(keras.Model(inp, y, name="rescales"))
    graph = load(model)
    assert [(layer.name, layer.op) for layer in graph.layers if layer.op in ("rescaling", "mul", "add")] == [
        ("first", "rescaling"), ("second/scale", "mul"), ("second", "add"), ("sum", "add"), ("deep", "mul")]
    x = np.random.default_rng(0).uniform(0, 255, size=(3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL * 100)


def test_concatenate_of_sequences_along_time():
    inp = keras.Input((12, 3))
    a = L.Conv1D(3, 3, padding="same", name="a")(inp)
    y = L.Concatenate(axis=1, name="time")([inp, a])
    y = L.Concatenate(axis=2, name="chan")([y, y])
    model = randomize(keras.Model(inp, y, name="seq_cat"))
    graph = load(model)
    assert graph.layer("time").output_shape == (1, 24, 3) and graph.layer("chan").output_shape == (1, 24, 6)
    x = np.random.default_rng(0).normal(size=(3, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x[:, None])[:, 0], model(x).numpy(), rtol=RTOL, atol=ATOL)


def test_upsampling2d_nearest():
    model = randomize(keras.Sequential([keras.Input((4, 3, 2)), L.Conv2D(3, 1, name="c"),
                                        L.UpSampling2D((2, 3), name="up")], name="up"))
    graph = load(model)
    assert graph.layer("up").output_shape == (8, 9, 3)
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), model(x).numpy(), rtol=RTOL, atol=ATOL)
    bilinear = keras.Sequential([keras.Input((4, 3, 2)), L.UpSampling2D(2, interpolation="bilinear", name="bl")])
    with pytest.raises(UnsupportedLayer, match="layer 'bl': unsupported UpSampling2D\\(interpolation='bilinear'\\)"):
        load(bilinear)
