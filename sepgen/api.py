"""The Python API: load -> quantize -> generate / simulate / verify / report."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import codegen, serialize, simulate, verification as _verify
from .evaluate import Agreement, agreement
from .frontends import ModelFileError, load
from .ir import Graph
from .quantize import quantize, quantize_tensor


class MissingCalibration(ValueError):
    """A float model needs representative data to be quantized."""


def load_array(path: str | Path, what: str) -> np.ndarray:
    """np.load of a .npy file without pickle; errors name the file."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what} file") from None
    except (ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable .npy {what} array ({exc})") from None


@dataclass(frozen=True)
class Prepared:
    """A quantized graph plus, when sepgen quantized it, the float graph and the agreement figures."""

    graph: Graph
    float_graph: Graph | None = None
    agreement: Agreement | None = None


QUANTIZERS = ("sepgen", "tflite")


def prepare(model, calibration: np.ndarray | str | Path | None = None, progress: bool = True,
            quantizer: str = "sepgen") -> Prepared:
    """Load a model (path, Keras model or Graph) and quantize it if it is float.

    ``calibration``: representative float inputs (N, H, W, C) NHWC, as array or .npy path.
    ``quantizer``: "sepgen" (default) or "tflite" (the TensorFlow Lite converter; Keras input only).
    """
    if quantizer not in QUANTIZERS:
        raise ValueError(f"unknown quantizer '{quantizer}' (supported: {', '.join(QUANTIZERS)})")
    graph = model if isinstance(model, Graph) else load(model)
    if graph.quantizer != "none":
        return Prepared(graph)
    if calibration is None:
        raise MissingCalibration(f"{graph.source}: float model; pass representative inputs with --calibration X.npy "
                                 "(float32, NHWC, batch first)")
    if isinstance(calibration, (str, Path)):
        calibration = load_array(calibration, "calibration")
    calibration = np.asarray(calibration, np.float32)
    if quantizer == "tflite":
        keras_input = not isinstance(model, (Graph, str, Path)) or Path(model).suffix.lower() in (
            ".keras", ".h5", ".hdf5")
        if not keras_input:
            raise ValueError(f"{graph.source}: --quantizer tflite needs a Keras model (.keras/.h5)")
        from .tfconvert import quantize_with_tflite

        qgraph = quantize_with_tflite(model, calibration, graph.source)[0]
        return Prepared(qgraph, graph, agreement(graph, qgraph, calibration))
    qgraph = quantize(graph, calibration, progress=progress)
    return Prepared(qgraph, graph, agreement(graph, qgraph, calibration))


def load_generated(directory: str | Path) -> tuple[Graph, str, dict[str, str]]:
    """(graph, prefix, C files) of a directory written by :func:`generate`."""
    json_path, npz_path, prefix = serialize.find_graph_files(Path(directory))
    graph = serialize.from_files(json_path, npz_path)
    files = {p.name: p.read_text() for p in sorted(Path(directory).iterdir()) if p.suffix in (".c", ".h")}
    return graph, prefix, files


def write_atomically(out_dir: str | Path, files: dict[str, bytes]) -> Path:
    """Write files into a fresh directory, then move it into place (no half-written output)."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_file_atomically(path: str | Path, data: bytes) -> Path:
    """Write one file via a temporary sibling and os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def generate(graph: Graph, out_dir: str | Path, prefix: str = "model") -> Path:
    """Write the C sources and the quantized graph (<prefix>.sepgen.json/.npz) into out_dir."""
    files = {name: text.encode() for name, text in codegen.render(graph, prefix).items()}
    json_bytes, npz_bytes = serialize.to_bytes(graph)
    files[f"{prefix}.sepgen.json"], files[f"{prefix}.sepgen.npz"] = json_bytes, npz_bytes
    return write_atomically(out_dir, files)


def as_int8_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """int8 inputs as given, float inputs quantized with the model's input quantization."""
    x = np.asarray(x)
    if x.dtype == np.int8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        return quantize_tensor(x, graph.tensors[graph.input].quant)
    raise ValueError(f"inputs must be int8 (quantized) or float, got {x.dtype}")


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
