"""``--quantizer tflite``: quantize a Keras model with the TensorFlow Lite converter instead of sepgen's.

Full int8 conversion (Optimize.DEFAULT, TFLITE_BUILTINS_INT8, int8 input and output) with the
calibration array as representative data, one sample at a time; the resulting .tflite is then read
by the .tflite frontend, so the graph carries TFLite's exact quantization (quantizer "tflite").
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from .ir import Graph


def keras_to_int8_tflite(model, calibration: np.ndarray, float_io: bool = False, **converter_options) -> bytes:
    """Full-int8 .tflite bytes of a keras.Model; ``calibration`` is float NHWC (N, H, W, C).

    ``float_io`` keeps float input/output (the converter adds QUANTIZE/DEQUANTIZE at the edges);
    ``converter_options`` are set as attributes of the TFLiteConverter.  What TensorFlow prints
    meanwhile is captured (:mod:`sepgen.quiet`; shown with ``--verbose``).
    """
    from .quiet import third_party

    with third_party("converting with the TFLite converter"):  # ~100 lines of output (--verbose shows them)
        return _convert(model, calibration, float_io, converter_options)


def _convert(model, calibration: np.ndarray, float_io: bool, converter_options: dict) -> bytes:
    import tensorflow as tf

    data = np.asarray(calibration, np.float32)

    def representative():
        for sample in data:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    for key, value in converter_options.items():
        setattr(converter, key, value)
    return converter.convert()


def quantize_with_tflite(model, calibration: np.ndarray, source: str) -> tuple[Graph, bytes]:
    """(int8 Graph read from the converted model, the .tflite bytes).  ``model``: keras.Model or file path."""
    from .frontends.tflite import load_tflite

    if isinstance(model, (str, Path)):
        from .frontends.keras_files import load_keras_model
        from .quiet import third_party

        with third_party(f"reading {Path(model).name}"):
            model = load_keras_model(model)
    data = keras_to_int8_tflite(model, calibration)
    with tempfile.TemporaryDirectory(prefix="sepgen-tflite-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        graph = load_tflite(path)
    return dataclasses.replace(graph, name=getattr(model, "name", graph.name) or graph.name,
                               source=f"{source} (TFLite converter)"), data
