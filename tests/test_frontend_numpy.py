"""The NumPy (.npz + JSON spec) frontend: round trip of every layer type, BN folding, strict validation."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from conftest import require_module
from sepgen.frontends import ModelFileError, load
from sepgen.frontends.numpy import SPEC_TYPES, SPEC_KEY, save_npz_model
from sepgen.ir import UnsupportedLayer
from sepgen.simulate import run_float


def _r(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.normal(size=shape) * 0.5).astype(np.float32)


def _bn(rng: np.random.Generator, prefix: str, c: int) -> dict[str, np.ndarray]:
    return {f"{prefix}.gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{prefix}.beta": _r(rng, c),
            f"{prefix}.mean": _r(rng, c),
            f"{prefix}.var": rng.uniform(0.2, 2.0, c).astype(np.float32)}


def _bn_layer(name: str, prefix: str, epsilon: float = 1e-3) -> dict:
    return {"name": name, "type": "batch_norm", "gamma": f"{prefix}.gamma", "beta": f"{prefix}.beta",
            "moving_mean": f"{prefix}.mean", "moving_variance": f"{prefix}.var", "epsilon": epsilon}


def full_model(seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """A spec using every layer type once (input 9x9x2)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "c1.kernel": _r(rng, 3, 3, 2, 4), "c1.bias": _r(rng, 4), **_bn(rng, "bn1", 4),
        "dw.kernel": _r(rng, 3, 3, 4, 2), "dw.bias": _r(rng, 8),
        "sep.dw": _r(rng, 3, 3, 8, 1), "sep.pw": _r(rng, 1, 1, 8, 8), "sep.bias": _r(rng, 8),
        "d.kernel": _r(rng, 8, 5), "d.bias": _r(rng, 5), **_bn(rng, "bnd", 5), "gate.c": _r(rng, 8),
    }
    layers = [
        {"name": "c1", "type": "conv2d", "kernel": "c1.kernel", "bias": "c1.bias", "padding": "same"},
        _bn_layer("bn1", "bn1"),
        {"name": "r1", "type": "relu"},
        {"name": "dw", "type": "depthwise_conv2d", "kernel": "dw.kernel", "bias": "dw.bias", "strides": 2,
         "padding": "same", "activation": "relu6"},
        {"name": "sep", "type": "separable_conv2d", "depthwise_kernel": "sep.dw", "pointwise_kernel": "sep.pw",
         "bias": "sep.bias", "padding": "same", "dilation": [1, 1]},
        {"name": "r6", "type": "relu6"},
        {"name": "res", "type": "add", "inputs": ["dw", "r6"]},
        {"name": "zp", "type": "zero_padding2d", "padding": [[1, 0], [0, 2]]},
        {"name": "mp", "type": "max_pool2d", "pool_size": 2, "strides": 1},
        {"name": "leaky", "type": "leaky_relu", "negative_slope": 0.2},
        {"name": "sig", "type": "sigmoid"},
        {"name": "hs", "type": "hard_swish"},
        {"name": "gate", "type": "multiply", "constant": "gate.c"},
        {"name": "hsig", "type": "hard_sigmoid"},
        {"name": "cat", "type": "concatenate", "inputs": ["hsig", "gate"], "axis": 0},
        {"name": "lo", "type": "maximum", "constant": "gate.c"},
        {"name": "hi", "type": "minimum", "inputs": ["lo", "cat"]},
        {"name": "ap", "type": "avg_pool2d", "pool_size": [2, 2], "padding": "same"},
        {"name": "gap", "type": "global_avg_pool2d", "keepdims": True},
        {"name": "rs", "type": "reshape", "target_shape": [2, -1, 2]},
        {"name": "fl", "type": "flatten"},
        {"name": "drop", "type": "dropout", "rate": 0.25},
        {"name": "d", "type": "dense", "kernel": "d.kernel", "bias": "d.bias"},
        _bn_layer("bnd", "bnd"),
        {"name": "sm", "type": "softmax"},
    ]
    spec = {"format": "sepgen-npz", "version": 1, "name": "every_layer", "input_shape": [9, 9, 2],
            "layers": layers, "output": "sm"}
    return spec, arrays


def one_d_model(seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """A spec using every 1-D layer type (input a 24-step sequence of 3 channels)."""
    rng = np.random.default_rng(seed)
    arrays = {"c.kernel": _r(rng, 5, 3, 4), "c.bias": _r(rng, 4), "s.dw": _r(rng, 3, 4, 2), "s.pw": _r(rng, 1, 8, 6),
              "s.bias": _r(rng, 6), "d.kernel": _r(rng, 3, 6, 1), "d.bias": _r(rng, 6)}
    layers = [
        {"name": "norm", "type": "rescaling", "scale": 0.5, "offset": -0.25},  # reads the input: folded
        {"name": "c", "type": "conv1d", "kernel": "c.kernel", "bias": "c.bias", "strides": 2, "padding": "same",
         "activation": "relu"},
        {"name": "s", "type": "separable_conv1d", "depthwise_kernel": "s.dw", "pointwise_kernel": "s.pw",
         "bias": "s.bias", "padding": "same"},
        {"name": "mp", "type": "max_pool1d", "pool_size": 2},
        {"name": "up", "type": "upsampling2d", "size": [1, 2]},
        {"name": "mp2", "type": "max_pool1d", "pool_size": 2},
        {"name": "d", "type": "depthwise_conv1d", "kernel": "d.kernel", "bias": "d.bias", "dilation": 2},
        {"name": "ap", "type": "avg_pool1d", "pool_size": 2, "strides": 1, "padding": "same"},
        {"name": "deep", "type": "rescaling", "scale": 2.0, "offset": 1.0},  # elsewhere: a multiply and an add
    ]
    return {"format": "sepgen-npz", "version": 1, "name": "one_d", "input_shape": [24, 3], "layers": layers,
            "output": "deep"}, arrays


def test_one_d_layers_match_keras(tmp_path):
    """The 1-D types are Keras' 1-D layers (kernels in their layouts) over a sequence read as one row."""
    keras = require_module("keras")
    L = keras.layers
    spec, arrays = one_d_model()
    g = load(_save(tmp_path, spec, arrays))
    assert g.tensors[g.input].shape == (1, 24, 3) and g.layer("d").dilation == (1, 2)
    assert [(layer.name, layer.op) for layer in g.layers if "rescal" in layer.op or layer.op in ("mul", "add")] == [
        ("norm", "rescaling"), ("deep/scale", "mul"), ("deep", "add")]
    model = keras.Sequential([keras.Input((24, 3)), L.Rescaling(0.5, -0.25),
                              L.Conv1D(4, 5, 2, "same", activation="relu"),
                              L.SeparableConv1D(6, 3, padding="same", depth_multiplier=2), L.MaxPooling1D(2),
                              L.UpSampling1D(2), L.MaxPooling1D(2),
                              L.DepthwiseConv1D(3, dilation_rate=2), L.AveragePooling1D(2, 1, "same"),
                              L.Rescaling(2.0, 1.0)])
    model.layers[1].set_weights([arrays["c.kernel"], arrays["c.bias"]])
    model.layers[2].set_weights([arrays["s.dw"], arrays["s.pw"], arrays["s.bias"]])
    model.layers[6].set_weights([arrays["d.kernel"], arrays["d.bias"]])
    x = np.random.default_rng(1).normal(size=(3, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(g, x[:, None])[:, 0], np.asarray(model(x)), rtol=1e-4, atol=1e-5)


def _save(tmp_path, spec: dict, arrays: dict, name: str = "m.npz"):
    return save_npz_model(tmp_path / name, spec, arrays)


# --------------------------------------------------------------- round trip
def test_every_layer_type_is_covered():
    spec, _ = full_model()
    types = {layer["type"] for layer in spec["layers"] + one_d_model()[0]["layers"]}
    assert sorted(types) == list(SPEC_TYPES)


def test_round_trip_every_layer_type(tmp_path):
    spec, arrays = full_model()
    path = _save(tmp_path, spec, arrays)
    g = load(path)
    g.validate()
    assert g.name == "every_layer" and g.source == "m.npz" and len(g.source_sha256) == 64
    assert g.tensors[g.input].shape == (9, 9, 2)
    summary = [(layer.name, layer.op, layer.output_shape) for layer in g.layers]
    assert summary == [
        ("c1", "conv2d", (9, 9, 4)),
        ("dw", "depthwise_conv2d", (5, 5, 8)),
        ("sep/depthwise", "depthwise_conv2d", (5, 5, 8)),
        ("sep/pointwise", "conv2d", (5, 5, 8)),
        ("res", "add", (5, 5, 8)),
        ("zp", "pad", (6, 7, 8)),
        ("mp", "max_pool2d", (5, 6, 8)),
        ("leaky", "leaky_relu", (5, 6, 8)),
        ("sig", "logistic", (5, 6, 8)),
        ("hs", "hard_swish", (5, 6, 8)),
        ("gate", "mul", (5, 6, 8)),
        ("hsig/plus3", "add", (5, 6, 8)),
        ("hsig", "mul", (5, 6, 8)),
        ("cat", "concatenation", (10, 6, 8)),
        ("lo", "maximum", (10, 6, 8)),
        ("hi", "minimum", (10, 6, 8)),
        ("ap", "avg_pool2d", (5, 3, 8)),
        ("gap", "mean", (8,)),
        ("gap/keepdims", "reshape", (1, 1, 8)),
        ("rs", "reshape", (2, 2, 2)),
        ("fl", "reshape", (8,)),
        ("d", "fully_connected", (5,)),
        ("sm", "softmax", (5,)),
    ]
    c1, dw, sdw, spw, res = g.layers[:5]
    assert c1.activation == "relu" and c1.padding == "same"  # BN folded, ReLU fused
    assert dw.activation == "relu6" and dw.strides == (2, 2) and dw.depth_multiplier == 2
    np.testing.assert_array_equal(dw.kernel, arrays["dw.kernel"])
    np.testing.assert_array_equal(dw.bias, arrays["dw.bias"])
    assert sdw.bias is None and spw.activation == "relu6" and spw.kernel_size == (1, 1)
    np.testing.assert_array_equal(spw.bias, arrays["sep.bias"])
    assert res.inputs == (dw.output, spw.output)
    zp, mp, leaky, _, _, gate, _, _, _, _, _, ap = g.layers[5:17]
    np.testing.assert_array_equal(gate.constant, arrays["gate.c"])
    assert leaky.alpha == 0.2
    assert zp.paddings == ((1, 0), (0, 2), (0, 0))
    assert (mp.pool_size, mp.strides, mp.padding) == ((2, 2), (1, 1), "valid")
    assert (ap.pool_size, ap.strides, ap.padding) == ((2, 2), (2, 2), "same")
    assert g.layers[-2].kernel.shape == (8, 5) and g.output == g.layers[-1].output
    y = run_float(g, np.random.default_rng(1).normal(size=(3, 9, 9, 2)))
    assert y.shape == (3, 5) and np.allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_defaults_previous_layer_and_last_output(tmp_path):
    rng = np.random.default_rng(2)
    spec = {"format": "sepgen-npz", "version": 1, "input_shape": [6],
            "layers": [{"name": "d1", "type": "dense", "kernel": "k1", "activation": "relu"},
                       {"name": "d2", "type": "dense", "kernel": "k2", "activation": "softmax"}]}
    g = load(_save(tmp_path, spec, {"k1": rng.normal(size=(6, 4)), "k2": rng.normal(size=(4, 3))},
                   "vec.npz"))
    assert g.name == "vec"  # default: the file stem
    assert [(layer.op, layer.output_shape) for layer in g.layers] == [
        ("fully_connected", (4,)), ("fully_connected", (3,)), ("softmax", (3,))]
    assert g.layers[0].bias is None and g.layers[0].kernel.dtype == np.float32  # float64 accepted


def test_spec_as_unicode_string_is_accepted(tmp_path):
    spec, arrays = full_model()
    path = tmp_path / "str.npz"
    np.savez(path, **arrays, **{SPEC_KEY: np.array(json.dumps(spec))})
    assert [layer.name for layer in load(path).layers] == [layer.name for layer in load(
        _save(tmp_path, spec, arrays)).layers]


# ------------------------------------------------------------- BN folding
def _conv_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Plain NumPy stride-1 'same' conv, odd kernel, HWIO; x is NHWC."""
    kh, kw = k.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (k.shape[3],))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i:i + h, j:j + w, :], k[i, j])
    return out


def _depthwise_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Plain NumPy depthwise conv; output channel c*dm + m."""
    cin, dm = k.shape[2:]
    cols = [_conv_same(x[..., c:c + 1], k[:, :, c:c + 1, m:m + 1]) for c in range(cin) for m in range(dm)]
    return np.concatenate(cols, axis=-1)


def _bn_ref(y: np.ndarray, arrays: dict, prefix: str, eps: float) -> np.ndarray:
    return ((y - arrays[f"{prefix}.mean"]) / np.sqrt(arrays[f"{prefix}.var"].astype(np.float64) + eps)
            * arrays[f"{prefix}.gamma"] + arrays[f"{prefix}.beta"])


@pytest.mark.parametrize("kind", ["conv2d", "depthwise_conv2d", "dense"])
def test_batch_norm_folding_matches_unfolded_numpy(tmp_path, kind):
    rng = np.random.default_rng(3)
    eps = 1e-2
    shape, kshape, cout = {"conv2d": ((7, 6, 3), (3, 3, 3, 5), 5),
                           "depthwise_conv2d": ((7, 6, 3), (3, 3, 3, 2), 6),
                           "dense": ((10,), (10, 4), 4)}[kind]
    arrays = {"k": _r(rng, *kshape), "b": _r(rng, cout), **_bn(rng, "bn", cout)}
    conv = {"name": "layer", "type": kind, "kernel": "k", "bias": "b"}
    if kind != "dense":
        conv["padding"] = "same"
    spec = {"format": "sepgen-npz", "version": 1, "input_shape": list(shape),
            "layers": [conv, _bn_layer("bn", "bn", eps), {"name": "act", "type": "relu"}]}
    g = load(_save(tmp_path, spec, arrays))
    assert len(g.layers) == 1 and g.layers[0].activation == "relu"
    x = rng.normal(size=(4,) + shape).astype(np.float32)
    xd = x.astype(np.float64)
    if kind == "conv2d":
        y = _conv_same(xd, arrays["k"].astype(np.float64))
    elif kind == "depthwise_conv2d":
        y = _depthwise_same(xd, arrays["k"].astype(np.float64))
    else:
        y = xd @ arrays["k"]
    expected = np.maximum(_bn_ref(y + arrays["b"], arrays, "bn", eps), 0.0)
    got = run_float(g, x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# -------------------------------------------------------------- validation
def _mutated(mutate) -> tuple[dict, dict]:
    spec, arrays = full_model()
    spec, arrays = copy.deepcopy(spec), dict(arrays)
    mutate(spec, arrays)
    return spec, arrays


def _layer(spec: dict, name: str) -> dict:
    return next(layer for layer in spec["layers"] if layer["name"] == name)


FILE_ERRORS = {
    "unknown layer key": (lambda s, a: _layer(s, "c1").update(stride=2), "c1", "unknown key 'stride'"),
    "missing array": (lambda s, a: a.pop("dw.kernel"), "dw", "'dw.kernel', which is not in the archive"),
    "missing required option": (lambda s, a: _layer(s, "d").pop("kernel"), "d", "dense needs 'kernel'"),
    "integer array": (lambda s, a: a.update({"c1.kernel": np.ones((3, 3, 2, 4), np.int8)}), "c1",
                      "floating point"),
    "bool array": (lambda s, a: a.update({"d.bias": np.ones(5, bool)}), "d", "floating point"),
    "nan weight": (lambda s, a: a["sep.pw"].__setitem__((0, 0, 0, 0), np.nan), "sep", "NaN"),
    "array ref not a string": (lambda s, a: _layer(s, "c1").update(kernel=3), "c1", "string key"),
    "bad strides": (lambda s, a: _layer(s, "dw").update(strides=[1, 2, 3]), "dw", "'strides'"),
    "bool strides": (lambda s, a: _layer(s, "dw").update(strides=True), "dw", "'strides'"),
    "padding not a string": (lambda s, a: _layer(s, "c1").update(padding=1), "c1", "'padding'"),
    "bn shape": (lambda s, a: a.update({"bn1.gamma": np.ones(3, np.float32)}), "bn1", "expected (4,)"),
    "dense bias shape": (lambda s, a: a.update({"d.bias": np.ones(4, np.float32)}), "d", "expected (5,)"),
    "negative variance": (lambda s, a: a.update({"bn1.var": -np.ones(4, np.float32)}), "bn1", "positive"),
    "dropout rate": (lambda s, a: _layer(s, "drop").update(rate=1.5), "drop", "'rate'"),
    "reshape shape": (lambda s, a: _layer(s, "rs").update(target_shape=[3, -1]), "rs", "cannot reshape"),
    "unknown input": (lambda s, a: _layer(s, "res").update(inputs=["dw", "later"]), "res", "'later'"),
    "forward input": (lambda s, a: _layer(s, "c1").update(inputs=["dw"]), "c1", "earlier layer"),
    "two inputs": (lambda s, a: _layer(s, "mp").update(inputs=["dw", "res"]), "mp", "exactly 1 input"),
    "add without inputs": (lambda s, a: _layer(s, "res").pop("inputs"), "res", "needs 'inputs'"),
    "duplicate name": (lambda s, a: _layer(s, "mp").update(name="dw"), "dw", "duplicate"),
    "reserved name": (lambda s, a: _layer(s, "c1").update(name="input"), "input", "model input"),
    "type not a string": (lambda s, a: _layer(s, "fl").update(type=7), "fl", "'type' must be one of"),
    "layer not an object": (lambda s, a: s["layers"].insert(0, "conv"), None, "layers[0]"),
    "layer without name": (lambda s, a: s["layers"][0].pop("name"), None, "layers[0] 'name'"),
    "wrong format": (lambda s, a: s.update(format="keras"), None, "'format'"),
    "wrong version": (lambda s, a: s.update(version=2), None, "version 1"),
    "version true": (lambda s, a: s.update(version=True), None, "version 1"),
    "missing format": (lambda s, a: s.pop("format"), None, "'format'"),
    "unknown top-level key": (lambda s, a: s.update(outputs="sm"), None, "top-level key 'outputs'"),
    "bad input shape": (lambda s, a: s.update(input_shape=[9, 9, 2, 1]), None, "'input_shape'"),
    "no layers": (lambda s, a: s.update(layers=[]), None, "'layers'"),
    "unknown output": (lambda s, a: s.update(output="nope"), None, "'output'"),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_model_file_errors(tmp_path, case):
    mutate, layer, text = FILE_ERRORS[case]
    path = _save(tmp_path, *_mutated(mutate))
    with pytest.raises(ModelFileError) as info:
        load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and text in msg, msg
    if layer is not None:
        assert f"layer '{layer}'" in msg, msg


UNSUPPORTED = {
    "unknown type": (lambda s, a: _layer(s, "fl").update(type="lstm"), "fl", "supported: add, avg_pool1d, avg_pool2d"),
    "unknown padding": (lambda s, a: _layer(s, "c1").update(padding="causal"), "c1", "padding 'causal'"),
    "unknown activation": (lambda s, a: _layer(s, "dw").update(activation="tanh"), "dw", "'tanh'"),
    "bad kernel rank": (lambda s, a: a.update({"c1.kernel": np.ones((3, 3, 2), np.float32)}), "c1",
                        "kernel shape"),
    "stride with dilation": (lambda s, a: _layer(s, "dw").update(dilation=2), "dw", "strides/dilation"),
    "bn after relu": (lambda s, a: s["layers"].insert(3, _bn_layer("bn2", "bn1")), "bn2", "BatchNormalization"),
    "fused tensor reused": (lambda s, a: _layer(s, "mp").update(inputs=["c1"]), "mp", "fused"),
    "add of three": (lambda s, a: _layer(s, "res").update(inputs=["dw", "r6", "dw"]), "res", "exactly 2"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_layers(tmp_path, case):
    mutate, layer, text = UNSUPPORTED[case]
    path = _save(tmp_path, *_mutated(mutate))
    with pytest.raises(UnsupportedLayer) as info:
        load(path)
    msg = str(info.value)
    assert info.value.name == layer
    assert msg.startswith(f"{path}: layer '{layer}': unsupported") and "\n" not in msg and text in msg, msg


def _raw_npz(path, spec_value, arrays=None):
    np.savez(path, **(arrays or {}), **{SPEC_KEY: spec_value})
    return path


@pytest.mark.parametrize("raw, text", [
    (np.frombuffer(b'{"format": "sepgen-npz", "version": 1,', np.uint8), "not valid JSON"),
    (np.frombuffer(b'{"format": NaN}', np.uint8), "not valid JSON"),
    (np.frombuffer(b'{"a": 1, "a": 2}', np.uint8), "duplicate key"),
    (np.frombuffer(b'\xff\xfe', np.uint8), "not UTF-8"),
    (np.frombuffer(b'[1, 2]', np.uint8), "JSON object"),
    (np.zeros((2, 2), np.uint8), "1-D uint8"),
    (np.arange(4, dtype=np.int32), "1-D uint8"),
])
def test_bad_spec_payload(tmp_path, raw, text):
    path = _raw_npz(tmp_path / "bad.npz", raw)
    with pytest.raises(ModelFileError, match=text) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_missing_spec_and_generated_graph_hint(tmp_path):
    for name, hint in [("plain.npz", False), ("tiny.sepgen.npz", True)]:
        path = tmp_path / name
        np.savez(path, w=np.ones(3))
        with pytest.raises(ModelFileError, match=f"no '{SPEC_KEY}' entry") as info:
            load(path)
        assert ("pass its directory" in str(info.value)) == hint


def test_pickled_npz_is_refused(tmp_path):
    spec, arrays = full_model()
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays, evil=np.array([{"x": 1}], dtype=object),
             **{SPEC_KEY: np.frombuffer(json.dumps(spec).encode(), np.uint8)})
    with pytest.raises(ModelFileError, match="'evil' is an object/pickled array") as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_pickle_and_garbage_files_are_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"__spec__": "{}"}))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not really a zip")
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.ones(3))
    for path, text in [(pickled, "not a .npz archive"), (garbage, "not a readable .npz archive"),
                       (single, "single .npy array")]:
        with pytest.raises(ModelFileError, match=text) as info:
            load(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_save_refuses_reserved_key(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_npz_model(tmp_path / "x.npz", {}, {SPEC_KEY: np.zeros(1)})


def test_same_file_same_digest_and_exact_path(tmp_path):
    spec, arrays = full_model()
    a = _save(tmp_path, spec, arrays, "a.model")  # no .npz appended
    assert a.exists() and a.name == "a.model"
    b = _save(tmp_path, spec, arrays, "b.npz")
    assert load(b).source_sha256 == load(_save(tmp_path, spec, arrays, "c.npz")).source_sha256
