"""Keras model files -> float Graph: ``.keras`` archives and ``.h5``/``.hdf5`` (Keras 3 or Keras 2).

Files are loaded without executing code: ``safe_mode=True``, and Lambda layers are refused before
Keras sees the file.  Keras-2 ``.h5`` files (tf.keras 2.x / ``tf_keras``) are rebuilt from their
``model_config`` with the keys Keras 3 rejects removed (``groups`` of DepthwiseConv2D and
SeparableConv2D, ...), and their weights are read from the ``model_weights`` group by layer name.
The model itself is translated by :mod:`sepgen.frontends.keras`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from ..errors import one_line
from ..ir import Graph, UnsupportedLayer
from . import ModelFileError, register
from .keras import REFUSED_CLASSES, _supported_text, _translate

#: Keras-2 config keys that Keras 3 does not accept, per class (``groups`` must be 1).
_KERAS2_ONLY_KEYS = {
    "DepthwiseConv2D": ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "SeparableConv2D": ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"),
}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ===================================================================== files
def _is_custom(item: dict) -> bool:
    """A serialized object of a user's own class (registered name 'package>Class' or a non-Keras module)."""
    registered, module = item.get("registered_name"), item.get("module")
    return (isinstance(registered, str) and ">" in registered) or (
        "module" in item and not (isinstance(module, str) and module.startswith("keras")))


def _refuse_code_layers(config: Any) -> None:
    """Raise UnsupportedLayer for any Lambda-like or custom-class layer anywhere in a model config (JSON)."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            inner = item.get("config")
            lname = inner.get("name", "?") if isinstance(inner, dict) else item.get("name", "?")
            if item.get("class_name") in REFUSED_CLASSES:
                raise UnsupportedLayer(str(lname), str(item["class_name"]),
                                       "layers holding Python code are never loaded; " + _supported_text())
            if "class_name" in item and _is_custom(item):
                raise UnsupportedLayer(str(lname), f"custom class '{item['class_name']}'",
                                       "custom code is never loaded; " + _supported_text())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _parse_json(path: Path, text: Any, what: str) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        return json.loads(str(text))
    except ValueError as exc:
        raise ModelFileError(f"{path}: {what} is not valid JSON ({one_line(exc)})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: {what} is nested too deeply to be a Keras model configuration") from None


def _keras_load(path: Path):
    """keras.saving.load_model in safe mode; any failure becomes one ModelFileError line."""
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises TypeError/ValueError/OSError/KeyError... with long texts
        raise ModelFileError(f"{path}: cannot load the Keras model ({type(exc).__name__}: "
                             f"{one_line(exc, 200)})") from None


def _load_keras_archive(path: Path, data: bytes):
    """A Keras 3 ``.keras`` zip archive (config.json + metadata.json + model.weights.h5)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        kind = "an HDF5 file: rename it to .h5" if data.startswith(_HDF5_SIGNATURE) else "not a zip archive"
        raise ModelFileError(f"{path}: not a .keras archive ({kind})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            config = _parse_json(path, zf.read("config.json"), "config.json")
            names = zf.namelist()
            metadata = _parse_json(path, zf.read("metadata.json"), "metadata.json") \
                if "metadata.json" in names else {}
    except KeyError:
        raise ModelFileError(f"{path}: not a .keras model archive (no config.json)") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: corrupt .keras archive ({one_line(exc)})") from None
    version = str(metadata.get("keras_version", "")) if isinstance(metadata, dict) else ""
    if version and not version.startswith("3"):
        raise ModelFileError(f"{path}: a .keras archive written by Keras {version}, which Keras 3 cannot read; "
                             "save it as .h5 with that Keras (model.save('model.h5'))")
    _refuse_code_layers(config)
    return _keras_load(path)


def _h5_strings(group: h5py.Group, name: str) -> list[str]:
    """A string-list attribute as Keras writes it (possibly chunked into name0, name1, ...)."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{i}"]))
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _keras2_fix_config(config: Any) -> None:
    """Rewrite, in place, Keras-2 layer configs Keras 3 rejects: drop inert keys, BN axis [n] -> n."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            drop = _KERAS2_ONLY_KEYS.get(item.get("class_name"))  # type: ignore[arg-type]
            inner = item.get("config")
            if item.get("class_name") == "BatchNormalization" and isinstance(inner, dict) \
                    and isinstance(inner.get("axis"), list) and len(inner["axis"]) == 1:
                inner["axis"] = inner["axis"][0]  # Keras 2 writes [3]; Keras 3 takes an int
            if drop and isinstance(inner, dict):
                groups = inner.get("groups", 1)
                if groups != 1:
                    raise UnsupportedLayer(str(inner.get("name", "?")), f"{item['class_name']} groups={groups}",
                                           "only groups=1")
                for key in drop:
                    inner.pop(key, None)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _keras2_skips_first_node(entry: dict) -> bool:
    """Keras 2's ``_should_skip_first_node``: a nested model built on an Input has an internal node 0.

    Keras 2 counts that node in the node indices it saves; Keras 3 models have no such node.
    """
    if entry.get("class_name") in ("Functional", "Model"):
        return True
    layers = entry.get("config", {}).get("layers") if isinstance(entry.get("config"), dict) else None
    return (entry.get("class_name") == "Sequential" and isinstance(layers, list) and bool(layers)
            and isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer")


def _keras2_fix_node_indices(config: Any) -> None:
    """Shift, in place, Keras-2 references to nested models' nodes to Keras-3 numbering.

    Keras 3's ``functional_from_config`` already does this for Functional models named in
    ``output_layers`` (not for Sequential ones, nor in ``inbound_nodes``), so those are left alone.
    """
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            layers = item.get("layers")
            if "input_layers" in item and isinstance(layers, list):  # a functional model's config
                nested = {e.get("name"): e for e in layers if isinstance(e, dict) and _keras2_skips_first_node(e)}
                refs = [ref for e in layers if isinstance(e, dict) for node in e.get("inbound_nodes") or []
                        if isinstance(node, list) for ref in node]
                refs += [ref for ref in item.get("output_layers") or []
                         if isinstance(ref, list) and nested.get(ref[0], {}).get("class_name") == "Sequential"]
                for ref in refs:
                    if isinstance(ref, list) and len(ref) >= 3 and ref[0] in nested and isinstance(ref[1], int) \
                            and ref[1] > 0:
                        ref[1] -= 1
                for key in ("input_layers", "output_layers"):  # Keras 2 unpacks one-element lists; Keras 3 not
                    refs = item.get(key)
                    if isinstance(refs, list) and len(refs) == 1 and isinstance(refs[0], list) \
                            and len(refs[0]) == 3 and isinstance(refs[0][0], str):
                        item[key] = refs[0]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _keras2_rebuild(path: Path, config: Any):
    """Build a Keras 3 model from a Keras-2 ``model_config`` (no code is executed)."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), (dict, list)):
        raise ModelFileError(f"{path}: 'model_config' is not a Keras model configuration")
    cls = {"Sequential": keras.Sequential, "Functional": keras.Model, "Model": keras.Model}.get(
        config.get("class_name"))
    if cls is None:
        raise ModelFileError(f"{path}: model class '{config.get('class_name')}' is not Sequential or functional")
    _keras2_fix_config(config)
    _keras2_fix_node_indices(config)
    try:
        return cls.from_config(config["config"])
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot rebuild the Keras-2 model in Keras 3 ({type(exc).__name__}: "
                             f"{one_line(exc, 200)})") from None


def _keras2_load_weights(path: Path, f: h5py.File, model) -> None:
    """Assign each layer's weights from ``model_weights/<layer>`` in the order Keras 2 saved them."""
    if "model_weights" not in f:
        raise ModelFileError(f"{path}: no 'model_weights' group (saved without weights?)")
    root = f["model_weights"]
    for layer in model.layers:
        variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)  # Keras-2 order
        if not variables:
            continue
        if layer.name not in root:
            raise ModelFileError(f"{path}: no weights for layer '{layer.name}' in 'model_weights'")
        group = root[layer.name]
        names = _h5_strings(group, "weight_names")
        if len(names) != len(variables):
            raise ModelFileError(f"{path}: layer '{layer.name}' has {len(names)} saved weights, "
                                 f"the rebuilt layer expects {len(variables)}")
        for variable, wname in zip(variables, names):
            if wname not in group:
                raise ModelFileError(f"{path}: layer '{layer.name}': weight '{wname}' is missing")
            value = np.asarray(group[wname])
            if tuple(value.shape) != tuple(variable.shape):
                raise ModelFileError(f"{path}: layer '{layer.name}': weight '{wname}' has shape {value.shape}, "
                                     f"expected {tuple(variable.shape)}")
            variable.assign(value)


def _load_h5(path: Path, data: bytes):
    """An HDF5 model saved by Keras 3 (loaded by Keras) or by Keras 2 (rebuilt, see module docs)."""
    if not data.startswith(_HDF5_SIGNATURE):
        kind = "a zip archive: rename it to .keras" if zipfile.is_zipfile(io.BytesIO(data)) else "bad signature"
        raise ModelFileError(f"{path}: not an HDF5 file ({kind})")
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            if "model_config" not in f.attrs:
                raise ModelFileError(f"{path}: no model architecture ('model_config') in this HDF5 file; "
                                     "a weights-only file? save the whole model with model.save()")
            config = _parse_json(path, f.attrs["model_config"], "'model_config'")
            version = f.attrs.get("keras_version", b"")
            version = version.decode() if isinstance(version, bytes) else str(version)
            _refuse_code_layers(config)
            if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 3:
                model = None
            else:
                model = _keras2_rebuild(path, config)
                _keras2_load_weights(path, f, model)
    except (OSError, RuntimeError, KeyError) as exc:  # h5py: truncated/corrupt file
        raise ModelFileError(f"{path}: unreadable HDF5 file ({one_line(exc)})") from None
    return _keras_load(path) if model is None else model


def load_keras_model(path: str | Path):
    """The keras.Model of a .keras/.h5 file, loaded safely (as :func:`load_keras_file` does)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _load_keras_archive(path, data) if path.suffix.lower() == ".keras" else _load_h5(path, data)


def _with_source(exc: UnsupportedLayer, source: str) -> UnsupportedLayer:
    """Prefix an UnsupportedLayer's message with the file name (name/kind/detail stay as they are)."""
    if not str(exc).startswith(f"{source}: "):
        exc.args = (one_line(f"{source}: {exc}", 2000),)
    return exc


@register(".keras", ".h5", ".hdf5")
def load_keras_file(path: str | Path, **options: Any) -> Graph:
    """Load a Keras model file (``.keras``; ``.h5``/``.hdf5`` from Keras 3 or Keras 2) as a float Graph.

    Option: ``name`` (graph name; default the Keras model's name).  ``Graph.source`` is the file
    name and ``Graph.source_sha256`` the digest of its bytes.  Errors: :class:`ModelFileError`
    (unreadable file, one line) or :class:`UnsupportedLayer` (prefixed with the file name).
    """
    path = Path(path)
    name = options.pop("name", None)
    if options:
        raise TypeError(f"the Keras loader takes only the option 'name', got {', '.join(sorted(options))}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".keras":
            model = _load_keras_archive(path, data)
        else:
            model = _load_h5(path, data)
        return _translate(model, name, path.name, data)
    except UnsupportedLayer as exc:
        raise _with_source(exc, str(path)) from None
