"""Main job: train a small depthwise-separable CNN on scikit-learn's bundled 8x8 digits (offline),
then quantize -> generate C -> verify (C == simulator, byte for byte) -> report.

    python examples/digits.py [--out out/digits] [--epochs 40]

Requirements checked here, not just printed: float test accuracy >= 95 % and the
int8 simulator within 1 point of it.  Exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_digits_nhwc(seed: int = 0):
    """(x_train, y_train, x_test, y_test): float32 (N, 8, 8, 1) in [0, 1], stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, data.target, test_size=0.25, random_state=seed, stratify=data.target)


def build_model():
    """Stem conv, two depthwise-separable blocks (one as SeparableConv2D, one as Depthwise + 1x1), GAP, Dense."""
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = layers.SeparableConv2D(32, 3, padding="same", name="sep1")(x)
    x = layers.BatchNormalization(name="sep1_bn")(x)
    x = layers.ReLU(name="sep1_relu")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw2")(x)
    x = layers.BatchNormalization(name="dw2_bn")(x)
    x = layers.ReLU(name="dw2_relu")(x)
    x = layers.Conv2D(48, 1, activation="relu", name="pw2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, name="drop")(x)
    outputs = layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_ds_cnn")


def train(epochs: int, seed: int = 0):
    from sepgen.quiet import third_party

    with third_party():  # TensorFlow's start-up log lines (sepgen prints only its own)
        import keras

    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_nhwc(seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, validation_split=0.1)
    return model, (x_train, y_train, x_test, y_test)


def sepgen_cli(*args: str) -> None:
    print("$ sepgen " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "sepgen.cli", *args], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/digits", help="work directory (model, data, generated C)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import sepgen
    from sepgen.quantize import dequantize_tensor, quantize_tensor

    print(f"training on sklearn digits for {args.epochs} epochs ...", flush=True)
    model, (x_train, y_train, x_test, y_test) = train(args.epochs)
    float_acc = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    model_path = out / "digits.keras"
    model.save(model_path)
    np.save(out / "calibration.npy", x_train[:300], allow_pickle=False)

    # The int8 accuracy, measured on the held-out test set with the simulator.
    graph = sepgen.load(model_path)
    qgraph = sepgen.quantize(graph, x_train[:300])
    in_q, out_q = qgraph.tensors[qgraph.input].quant, qgraph.tensors[qgraph.output].quant
    scores = dequantize_tensor(sepgen.run(qgraph, quantize_tensor(x_test, in_q)), out_q)
    int8_acc = float((scores.argmax(1) == y_test).mean())
    np.save(out / "test_inputs_int8.npy", quantize_tensor(x_test, in_q), allow_pickle=False)
    print(f"test accuracy: float {100 * float_acc:.2f} %, int8 {100 * int8_acc:.2f} % "
          f"({len(y_test)} held-out digits)")

    # The same model quantized by the TFLite converter (--quantizer tflite), for comparison.
    tgraph = sepgen.prepare(model_path, x_train[:300], progress=False, quantizer="tflite").graph
    t_in, t_out = tgraph.tensors[tgraph.input].quant, tgraph.tensors[tgraph.output].quant
    t_scores = dequantize_tensor(sepgen.run(tgraph, quantize_tensor(x_test, t_in)), t_out)
    tflite_acc = float((t_scores.argmax(1) == y_test).mean())
    print(f"int8 test accuracy by quantizer: sepgen {100 * int8_acc:.2f} %, TFLite converter "
          f"{100 * tflite_acc:.2f} %")

    # The same pipeline through the command line, as a user runs it.
    c_dir = out / "c"
    sepgen_cli("generate", str(model_path), "--calibration", str(out / "calibration.npy"), "-o", str(c_dir),
               "--prefix", "digits", "--quiet")
    sepgen_cli("verify", str(c_dir), "--inputs", str(out / "test_inputs_int8.npy"))
    sepgen_cli("verify", str(c_dir), "--count", "200", "--sanitize")
    sepgen_cli("report", str(c_dir))

    ok = float_acc >= 0.95 and int8_acc >= float_acc - 0.01
    print(("PASS" if ok else "FAIL") + ": float >= 95 % and int8 within 1 point of float")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
