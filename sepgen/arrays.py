"""User arrays (calibration data, verification and simulation inputs): loading and checking.

Every array a user hands sepgen is NHWC with the batch first: ``(N,) + input shape``.  Problems
are reported as one :class:`~sepgen.errors.DataError` line naming the file (or ``what``) and the
shape, dtype or values expected; ``.npy`` files are read without pickle.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError, one_line
from .ir import Graph


def load_array(path: str | Path, what: str) -> np.ndarray:
    """A ``.npy`` array read with ``allow_pickle=False``; every failure is one DataError line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such {what} file")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, not a .npy {what} file")
    try:
        value = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: the {what} array holds Python objects (pickle), which sepgen never "
                            "loads; save a numeric array with np.save(..., allow_pickle=False)") from None
        raise DataError(f"{path}: not a readable .npy {what} array ({one_line(exc, 120)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        detail = "the file is empty" if path.stat().st_size == 0 else one_line(exc, 120) or type(exc).__name__
        raise DataError(f"{path}: not a readable .npy {what} array ({detail})") from None
    if not isinstance(value, np.ndarray):  # a .npz archive
        value.close()
        raise DataError(f"{path}: a .npz archive; the {what} must be one .npy array")
    return value


def _expected(graph: Graph) -> str:
    dims = ", ".join(str(d) for d in graph.tensors[graph.input].shape)
    return f"(N, {dims})"


def batched(graph: Graph, x: np.ndarray, source: str, what: str) -> np.ndarray:
    """``x`` with shape (N,) + the model's input shape, N >= 1; a single unbatched sample gets N = 1.  A 1-D
    model's input (1, T, C) (a sequence read as one row) also takes sequences (N, T, C) or one (T, C)."""
    shape = tuple(graph.tensors[graph.input].shape)
    if len(shape) == 3 and shape[0] == 1 and x.shape[-2:] == shape[1:] and x.ndim in (2, 3):
        x = x.reshape((-1,) + shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise DataError(f"{source}: {what} of shape {tuple(x.shape)}; the model takes {_expected(graph)} "
                        "(NHWC, batch first)")
    if len(x) == 0:
        raise DataError(f"{source}: {what} holds 0 samples; at least one {_expected(graph)} sample is needed")
    return x


def _real_numbers(x: np.ndarray, source: str, what: str) -> None:
    if x.dtype.kind not in "iuf":
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "string", "S": "bytes"}.get(x.dtype.kind,
                                                                                              str(x.dtype))
        raise DataError(f"{source}: {what} has {kind} dtype {x.dtype}; real numbers are expected")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(f"{source}: {what} contains {bad} NaN or infinite value{'s' if bad > 1 else ''}")


def calibration_data(graph: Graph, x: np.ndarray, source: str = "calibration data") -> np.ndarray:
    """Representative float inputs as float32 (N,) + input shape: real, finite, at least one sample."""
    x = np.asarray(x)
    _real_numbers(x, source, "calibration data")
    x = batched(graph, x, source, "calibration data")
    x32 = x.astype(np.float32)
    if not np.all(np.isfinite(x32)):
        raise DataError(f"{source}: calibration data exceeds the float32 range (max |x| {np.abs(x).max():.3g})")
    return x32


def model_inputs(graph: Graph, x: np.ndarray, source: str = "inputs", quantize=None) -> np.ndarray:
    """int8 model inputs (N,) + input shape.

    int8 arrays are taken as they are; other integer arrays when every value fits int8; float arrays
    are real values, quantized with ``quantize(x)`` (the model's input scale and zero point).
    """
    x = np.asarray(x)
    _real_numbers(x, source, "inputs")
    x = batched(graph, x, source, "inputs")
    if x.dtype == np.int8:
        return x
    if x.dtype.kind in "iu":
        if x.size and (int(x.min()) < -128 or int(x.max()) > 127):
            raise DataError(f"{source}: {x.dtype} inputs range over [{int(x.min())}, {int(x.max())}]; int8 inputs "
                            "must lie in [-128, 127] (pass float values to have them quantized)")
        return x.astype(np.int8)
    if quantize is None:
        raise DataError(f"{source}: float inputs where int8 inputs are required; quantize them with the model's "
                        "input scale and zero point")
    return quantize(x)
