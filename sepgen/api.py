"""The Python API: load -> quantize -> generate / simulate / verify / report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import codegen, output, serialize, simulate, targets, verification as _verify
from .arrays import calibration_data, load_array, model_inputs
from .errors import UserError, one_line
from .evaluate import Agreement, agreement
from .frontends import ModelFileError, load
from .ir import Graph
from .layouts import render as layouts_render
from .micropython.sources import binding_name
from .quantize import quantize, quantize_tensor


class MissingCalibration(UserError):
    """A float model needs representative data to be quantized."""


@dataclass(frozen=True)
class Prepared:
    """A quantized graph plus, when sepgen quantized it, the float graph and the agreement figures."""

    graph: Graph
    float_graph: Graph | None = None
    agreement: Agreement | None = None
    #: with ``quantizer="tflite"``: the int8 .tflite the TensorFlow Lite converter made
    tflite: bytes | None = None


QUANTIZERS = ("sepgen", "tflite")


def prepare(model, calibration: np.ndarray | str | Path | None = None, progress: bool = True,
            quantizer: str = "sepgen") -> Prepared:
    """Load a model (path, Keras model or Graph) and quantize it if it is float.

    ``calibration``: representative float inputs (N, H, W, C) NHWC, as array or .npy path.
    ``quantizer``: "sepgen" (default) or "tflite" (the TensorFlow Lite converter; Keras input only).
    """
    if quantizer not in QUANTIZERS:
        raise UserError(f"unknown quantizer '{quantizer}' (supported: {', '.join(QUANTIZERS)})")
    graph = model if isinstance(model, Graph) else load(model)
    if graph.quantizer != "none":
        return Prepared(graph)
    if calibration is None:
        raise MissingCalibration(f"{graph.source}: float model; pass representative inputs with --calibration X.npy "
                                 "(float32, NHWC, batch first)")
    source = "calibration data"
    if isinstance(calibration, (str, Path)):
        source, calibration = str(calibration), load_array(calibration, "calibration")
    calibration = calibration_data(graph, calibration, source)
    if quantizer == "tflite":
        keras_input = not isinstance(model, (Graph, str, Path)) or Path(model).suffix.lower() in (
            ".keras", ".h5", ".hdf5")
        if not keras_input:
            raise UserError(f"{graph.source}: --quantizer tflite needs a Keras model (.keras/.h5)")
        from .tfconvert import quantize_with_tflite

        qgraph, tflite = quantize_with_tflite(model, calibration, graph.source)
        return Prepared(qgraph, graph, agreement(graph, qgraph, calibration), tflite)
    qgraph = quantize(graph, calibration, progress=progress)
    return Prepared(qgraph, graph, agreement(graph, qgraph, calibration))


def load_generated(directory: str | Path) -> tuple[Graph, str, dict[str, str]]:
    """(graph, prefix, C files) of a directory written by :func:`generate`."""
    json_path, npz_path, prefix = serialize.find_graph_files(Path(directory))
    graph = serialize.from_files(json_path, npz_path)
    files = {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix in (".c", ".h") and path.name != binding_name(prefix):  # the C model, not its binding
            try:
                files[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelFileError(f"{path}: unreadable generated source ({one_line(exc, 120)})") from None
    return graph, prefix, files


def generate(graph: Graph, out_dir: str | Path, prefix: str = "model", force: bool = False,
             inputs: tuple[str | Path | None, ...] = (), target: str = "host",
             micropython: tuple[str, ...] = (), schedule: str | None = None, reuse_input: bool = False,
             layouts: tuple[str, ...] = ("plain",), tflite: bytes | None = None) -> Path:
    """Write the C sources and the quantized graph (<prefix>.sepgen.json/.npz) into out_dir.

    The directory is written atomically and only where that destroys nothing sepgen did not
    create (:mod:`sepgen.output`): a new or empty directory, or sepgen's own earlier output (files
    changed since then are replaced only with ``force``).  ``inputs`` are the files the graph was
    made from: ``out_dir`` may not contain them.  ``target`` picks kernel variants (:mod:`sepgen.targets`).
    ``micropython`` adds MicroPython backends ("natmod", "usercmod", "python": :mod:`sepgen.micropython`).
    ``schedule`` and ``reuse_input``: :func:`sepgen.codegen.render` (:mod:`sepgen.schedule`); ``schedule`` None
    is the command line's default, :func:`sepgen.targets.default_schedule` (``auto``).
    ``layouts``: build metadata for firmware ecosystems ("cmake", "arduino", ...: :mod:`sepgen.layouts`)
    added to the plain output.  ``tflite``: the converted model of ``--quantizer tflite``
    (:attr:`Prepared.tflite`), kept as ``<prefix>.tflite``.
    """
    if reuse_input and micropython:
        raise UserError("--reuse-input cannot be combined with --micropython: a MicroPython invoke() takes "
                        "an immutable bytes-like input")
    schedule = schedule or targets.default_schedule(target)
    c_files = codegen.render(graph, prefix, target, schedule, reuse_input)
    layout_files = layouts_render(tuple(layouts), prefix, c_files, target,
                                  f"int8 neural network '{graph.name}' generated by sepgen" if graph.name else "")
    if micropython:  # MicroPython backends (sepgen.micropython): binding, build files, <prefix>.py
        from .micropython import render as render_micropython

        c_files.update(render_micropython(graph, prefix, tuple(micropython), list(c_files)))
    files = {name: text.encode() for name, text in {**c_files, **layout_files}.items()}
    json_bytes, npz_bytes = serialize.to_bytes(graph)
    manifest = f"{prefix}.sepgen.json"
    files[manifest], files[f"{prefix}.sepgen.npz"] = json_bytes, npz_bytes
    if tflite is not None:
        files[f"{prefix}.tflite"] = bytes(tflite)
    return output.write_directory(out_dir, files, manifest, inputs=inputs, force=force)


def as_int8_inputs(graph: Graph, x: np.ndarray, source: str = "inputs") -> np.ndarray:
    """int8 inputs (N,) + input shape: int8 as given, float quantized with the model's input quantization.

    ``source`` (a file name) is named in the DataError raised for a wrong shape, dtype or value.
    """
    quant = graph.tensors[graph.input].quant
    return model_inputs(graph, x, source, quantize=lambda v: quantize_tensor(v, quant))


def verify(graph: Graph, inputs: np.ndarray | None = None, files: dict[str, str] | None = None,
           prefix: str = "model", count: int = 100, sanitize: bool = False) -> _verify.VerifyResult:
    """Compile the generated C for the host and require byte equality with the simulator."""
    x = _verify.random_inputs(graph, count) if inputs is None else as_int8_inputs(graph, inputs)
    return _verify.verify_host(graph, x, prefix, sanitize, files)


def random_inputs(graph: Graph, count: int, seed: int = 0) -> np.ndarray:
    """Full-range random int8 inputs (the first two are all -128 and all 127)."""
    return _verify.random_inputs(graph, count, seed)


def run_int8(graph: Graph, x: np.ndarray) -> np.ndarray:
    return simulate.run(graph, x)
