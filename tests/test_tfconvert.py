"""--quantizer tflite: Keras -> TFLite converter -> .tflite frontend; simulator == TFLM, C == simulator."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import require_module
from util import assert_c_matches

keras = require_module("keras")
require_module("tflite_micro")

import sepgen  # noqa: E402
from sepgen.quantize import quantize_tensor  # noqa: E402
from sepgen.tflm import compare_with_tflm  # noqa: E402
from sepgen.verification import random_inputs  # noqa: E402

L = keras.layers


def small_model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((9, 7, 2))
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.Conv2D(6, 1, activation="relu6")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(4, activation="softmax")(x), name="tiny_tfq")


def test_prepare_with_tflite_quantizer_matches_tflm_and_c(tmp_path):
    from sepgen.tfconvert import keras_to_int8_tflite

    model = small_model()
    x = np.random.default_rng(0).normal(size=(40, 9, 7, 2)).astype(np.float32)
    prepared = sepgen.prepare(model, x, progress=False, quantizer="tflite")
    q = prepared.graph
    assert q.quantizer == "tflite" and prepared.agreement is not None
    assert prepared.agreement.top1 >= 0.9 and "(TFLite converter)" in q.source
    path = tmp_path / "m.tflite"
    path.write_bytes(keras_to_int8_tflite(model, x))
    inputs = np.concatenate([random_inputs(q, 16), quantize_tensor(x[:8], q.tensors[q.input].quant)])
    assert compare_with_tflm(q, path, inputs) is None
    assert np.array_equal(sepgen.run(q, inputs), sepgen.run(sepgen.load(path), inputs))
    assert_c_matches(q, inputs, sanitize=False)


def test_cli_generate_and_report_say_which_quantizer(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(30, 9, 7, 2)).astype(np.float32))
    cli = [sys.executable, "-m", "sepgen.cli"]
    proc = subprocess.run(cli + ["generate", str(tmp_path / "m.keras"), "--calibration", str(tmp_path / "x.npy"),
                                 "--quantizer", "tflite", "-o", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(cli + ["report", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "quantizer: tflite" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(cli + ["verify", str(tmp_path / "out"), "--count", "10"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
