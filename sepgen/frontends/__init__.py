"""Frontends: model sources -> :class:`sepgen.ir.Graph`.

Each frontend module registers a loader for the file suffixes it understands with
:func:`register`; :func:`load` dispatches on the suffix (or on an in-memory Keras
model).  Modules are imported lazily so that TensorFlow is only needed for Keras input.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..ir import Graph
from ..quiet import third_party

Loader = Callable[..., Graph]
_LOADERS: dict[str, Loader] = {}
#: suffix -> module that registers it (imported on first use)
_MODULES = {".keras": "keras_files", ".h5": "keras_files", ".hdf5": "keras_files", ".npz": "numpy", ".tflite": "tflite"}


class ModelFileError(UserError):
    """A model file that cannot be read (missing, corrupt, wrong kind).  Names the file."""


def register(*suffixes: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``fn(path, **options) -> Graph`` for the given file suffixes."""

    def wrap(fn: Loader) -> Loader:
        for suffix in suffixes:
            _LOADERS[suffix] = fn
        return fn

    return wrap


def supported_suffixes() -> list[str]:
    return sorted(_MODULES)


def check_model_path(model: str | Path) -> Path:
    """``model`` as a Path if it names an existing file of a supported type; else ModelFileError."""
    path = Path(model)
    suffix = path.suffix.lower()
    if not path.exists() and suffix in (*_MODULES, ""):
        raise ModelFileError(f"{path}: no such file")
    if suffix not in _MODULES:
        raise ModelFileError(f"{path}: unsupported model file type '{suffix}' "
                             f"(supported: {', '.join(supported_suffixes())})")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    return path


def load(model, **options) -> Graph:
    """Load a float (or, for .tflite, int8) Graph from a path or an in-memory Keras model."""
    if not isinstance(model, (str, Path)):
        from .keras import from_keras_model

        return from_keras_model(model, **options)
    path = check_model_path(model)
    suffix = path.suffix.lower()
    with third_party(f"reading {path.name}"):  # TensorFlow/Keras print while they load (--verbose shows it)
        return _load_file(path, suffix, options)


def _load_file(path: Path, suffix: str, options: dict) -> Graph:
    if suffix not in _LOADERS:
        try:
            importlib.import_module(f".{_MODULES[suffix]}", __name__)
        except ModuleNotFoundError as exc:
            if suffix in _LOADERS:
                raise
            raise ModelFileError(f"{path}: reading {suffix} files needs the '{exc.name}' package "
                                 f"(pip install 'sepgen[keras]')") from None
    try:
        return _LOADERS[suffix](path, **options)
    except UserError as exc:  # every message names the file
        if not str(exc).startswith(f"{path}: "):
            exc.args = (f"{path}: {exc}",)
        raise
