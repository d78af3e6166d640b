"""The sepgen ``.npz`` model format: writing, reading without pickle, and typed layer-option access.

See ``docs/numpy-format.md``.  :mod:`sepgen.frontends.numpy` translates a read spec into a Graph.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import one_line
from . import ModelFileError

FORMAT = "sepgen-npz"
VERSION = 1
SPEC_KEY = "__spec__"
#: The name by which layers' ``inputs`` refer to the model input.
INPUT_NAME = "input"
_TOP_KEYS = {"format", "version", "name", "input_shape", "layers", "output"}
_COMMON_KEYS = ("name", "type", "inputs")



# ------------------------------------------------------------------ writing
def save_npz_model(path: str | Path, spec: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write a sepgen ``.npz`` model: ``arrays`` plus ``spec`` as JSON (UTF-8, uint8) under ``__spec__``.

    The spec is written as given (not validated; :func:`sepgen.frontends.load` validates).
    ``path`` is used exactly (no ``.npz`` is appended).  The archive is deflate-compressed with
    fixed member timestamps, so the same spec and arrays always give the same bytes (and the same
    sha256 in the generated C banner).  Object arrays are refused.  Returns the path.
    """
    if SPEC_KEY in arrays:
        raise ValueError(f"array key '{SPEC_KEY}' is reserved for the spec")
    text = json.dumps(spec, allow_nan=False, indent=1)
    payload = {str(k): np.asarray(v) for k, v in arrays.items()}
    payload[SPEC_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in payload.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)
    return path


# ------------------------------------------------------------------ reading
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate key {dup[0]!r} in a JSON object")
    return dict(pairs)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_spec(source: str, raw: np.ndarray) -> dict:
    if raw.dtype == np.uint8 and raw.ndim == 1:
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"{source}: '{SPEC_KEY}' is not UTF-8 ({exc})") from None
    elif raw.dtype.kind == "U" and raw.ndim == 0:
        text = str(raw[()])
    else:
        raise ModelFileError(f"{source}: '{SPEC_KEY}' must be a 1-D uint8 array of UTF-8 JSON (or a 0-d "
                             f"unicode string array), got dtype {raw.dtype} shape {raw.shape}")
    try:
        spec = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(f"{source}: '{SPEC_KEY}' is not valid JSON ({one_line(str(exc))})") from None
    except RecursionError:
        raise ModelFileError(f"{source}: '{SPEC_KEY}' is nested too deeply to be a layer spec") from None
    if not isinstance(spec, dict):
        raise ModelFileError(f"{source}: '{SPEC_KEY}' must be a JSON object, got {type(spec).__name__}")
    return spec


def read_npz_model(path: str | Path) -> tuple[dict, dict[str, np.ndarray], bytes]:
    """(spec, arrays, file bytes) of a sepgen ``.npz`` model; pickled/object arrays are refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:  # np.load falls back to "pickle" for anything that is not zip/npy
        raise ModelFileError(f"{path}: not a .npz archive (neither a zip archive nor a .npy array; "
                             "pickled data is never loaded)") from None
    except Exception as exc:  # BadZipFile, OSError, EOFError, zlib.error, ...
        raise ModelFileError(f"{path}: not a readable .npz archive ({type(exc).__name__}: "
                             f"{one_line(str(exc))})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: a single .npy array, not a .npz archive with a '{SPEC_KEY}' entry")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise ModelFileError(f"{path}: array '{key}' is an object/pickled array, which sepgen "
                                         "refuses to load (allow_pickle=False); store numeric arrays only") from None
                raise ModelFileError(f"{path}: array '{key}' is unreadable ({one_line(str(exc))})") from None
            except Exception as exc:
                raise ModelFileError(f"{path}: array '{key}' is unreadable ({type(exc).__name__}: "
                                     f"{one_line(str(exc))})") from None
            if not isinstance(value, np.ndarray):
                raise ModelFileError(f"{path}: member '{key}' is not a .npy array")
            arrays[key] = value
    if SPEC_KEY not in arrays:
        hint = (" (this looks like a graph saved by 'sepgen generate': pass its directory instead)"
                if path.name.endswith(".sepgen.npz") else "")
        raise ModelFileError(f"{path}: no '{SPEC_KEY}' entry: not a {FORMAT} model; see docs/numpy-format.md"
                             f"{hint}")
    return _parse_spec(str(path), arrays.pop(SPEC_KEY)), arrays, data


# ------------------------------------------------------------- layer options
class _LayerSpec:
    """One layer dict being translated: typed accessors whose errors name the file and the layer."""

    def __init__(self, source: str, entry: dict, arrays: dict[str, np.ndarray], name: str, kind: str) -> None:
        self.source, self.entry, self.arrays, self.name, self.kind = source, entry, arrays, name, kind

    def error(self, what: str) -> ModelFileError:
        return ModelFileError(one_line(f"{self.source}: layer '{self.name}': {what}"))

    def array(self, key: str, required: bool = True) -> np.ndarray | None:
        """The float array the option ``key`` names (a key into the archive)."""
        ref = self.entry.get(key)
        if ref is None:
            if required:
                raise self.error(f"{self.kind} needs '{key}' (the key of a float array in the archive)")
            return None
        if not isinstance(ref, str):
            raise self.error(f"'{key}' must be the string key of an array in the archive, got {ref!r}")
        if ref not in self.arrays:
            raise self.error(f"'{key}' refers to array '{ref}', which is not in the archive "
                             f"({len(self.arrays)} arrays: {', '.join(sorted(self.arrays)[:8])}"
                             f"{', ...' if len(self.arrays) > 8 else ''})")
        value = self.arrays[ref]
        if not np.issubdtype(value.dtype, np.floating):
            raise self.error(f"array '{ref}' ('{key}') has dtype {value.dtype}; weights must be floating "
                             "point (float16/float32/float64)")
        if not np.all(np.isfinite(value)):
            raise self.error(f"array '{ref}' ('{key}') contains NaN or infinity")
        return value

    def vector(self, key: str, length: int, required: bool = True) -> np.ndarray | None:
        """A float array of shape ``(length,)``."""
        value = self.array(key, required)
        if value is not None and value.shape != (length,):
            raise self.error(f"array '{self.entry[key]}' ('{key}') has shape {value.shape}, expected ({length},)")
        return value

    def ints(self, key: str, default: Any) -> Any:
        """An int or a list of 2 positive ints (strides, dilation, pool_size)."""
        value = self._get(key, default)
        if value is None or (_is_int(value) and value >= 1):
            return value
        if isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value):
            return tuple(value)
        raise self.error(f"'{key}' must be a positive integer or a list of 2 positive integers, got {value!r}")

    def _get(self, key: str, default: Any) -> Any:
        """The option's value; absent and JSON null both mean the default."""
        value = self.entry.get(key)
        return default if value is None else value

    def string(self, key: str, default: str) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self.error(f"'{key}' must be a string, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"'{key}' must be a number, got {value!r}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"'{key}' must be true or false, got {value!r}")
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
