"""Save/load a Graph as JSON (structure) + .npz (arrays), without pickle.

``generate`` writes ``<prefix>.sepgen.json`` and ``<prefix>.sepgen.npz`` beside the C
files so that ``simulate DIR`` and ``verify DIR`` need nothing else.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from .bounds import check_integer_parameters
from .errors import UserError, one_line
from .frontends import ModelFileError
from .ir import LAYER_TYPES, Graph, QuantParams, Requant, TensorSpec

FORMAT = "sepgen-graph"
VERSION = 1


def _encode(value, key: str, arrays: dict[str, np.ndarray]):
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, Requant):
        arrays[key + ".multiplier"], arrays[key + ".shift"] = value.multiplier, value.shift
        return {"__requant__": key}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def _decode(value, arrays):
    if isinstance(value, dict) and "__array__" in value:
        return arrays[value["__array__"]]
    if isinstance(value, dict) and "__requant__" in value:
        key = value["__requant__"]
        return Requant(arrays[key + ".multiplier"], arrays[key + ".shift"])
    if isinstance(value, list):
        return tuple(value)
    return value


def to_bytes(graph: Graph) -> tuple[bytes, bytes]:
    """(JSON bytes, NPZ bytes) describing the graph; deterministic."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, layer in enumerate(graph.layers):
        entry = {"op": layer.op}
        for f in dataclasses.fields(layer):
            entry[f.name] = _encode(getattr(layer, f.name), f"layer{i}.{f.name}", arrays)
        layers.append(entry)
    doc = {
        "format": FORMAT, "version": VERSION, "name": graph.name, "input": graph.input, "output": graph.output,
        "source": graph.source, "source_sha256": graph.source_sha256, "quantizer": graph.quantizer,
        "tensors": [{"name": t.name, "shape": list(t.shape),
                     "quant": None if t.quant is None else [t.quant.scale, t.quant.zero_point],
                     "source_index": t.source_index}
                    for t in graph.tensors.values()],
        "layers": layers,
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return json.dumps(doc, indent=1).encode(), buf.getvalue()


def from_files(json_path: Path, npz_path: Path) -> Graph:
    """The Graph saved by :func:`to_bytes`; any unreadable, corrupt or inconsistent file is a
    ModelFileError naming it (a graph with unrepresentable integers: UnrepresentableModel)."""
    json_path, npz_path = Path(json_path), Path(npz_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{json_path}: unreadable sepgen graph ({type(exc).__name__}: "
                             f"{one_line(exc, 120)})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ModelFileError(f"{json_path}: not a {FORMAT} v{VERSION} file")
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelFileError(f"{npz_path}: missing (the arrays of {json_path.name})") from None
    except Exception as exc:  # noqa: BLE001 - BadZipFile, EOFError, zlib.error, ValueError (pickle), ...
        raise ModelFileError(f"{npz_path}: corrupt or unreadable ({type(exc).__name__}: "
                             f"{one_line(exc, 120)})") from None
    try:
        graph = _graph(doc, arrays)
        graph.validate()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if isinstance(exc, UserError):
            raise
        raise ModelFileError(f"{json_path}: inconsistent sepgen graph ({type(exc).__name__}: "
                             f"{one_line(exc, 120)})") from None
    check_integer_parameters(graph)
    return graph


def _graph(doc: dict, arrays: dict[str, np.ndarray]) -> Graph:
    tensors = {t["name"]: TensorSpec(t["name"], tuple(int(d) for d in t["shape"]),
                                     None if t["quant"] is None else QuantParams(*t["quant"]),
                                     t.get("source_index"))
               for t in doc["tensors"]}
    layers = []
    for entry in doc["layers"]:
        entry = dict(entry)
        cls = LAYER_TYPES[entry.pop("op")]
        layers.append(cls(**{k: _decode(v, arrays) for k, v in entry.items()}))
    return Graph(name=doc["name"], layers=tuple(layers), tensors=tensors, input=doc["input"],
                 output=doc["output"], source=doc["source"], source_sha256=doc["source_sha256"],
                 quantizer=doc["quantizer"])


def find_graph_files(directory: Path) -> tuple[Path, Path, str]:
    """The (json, npz, prefix) of the one graph saved in a generated directory."""
    found = sorted(Path(directory).glob("*.sepgen.json"))
    if len(found) != 1:
        raise ModelFileError(f"{directory}: not a directory written by 'sepgen generate' (expected one "
                             f"*.sepgen.json, found {len(found)})")
    prefix = found[0].name[: -len(".sepgen.json")]
    return found[0], found[0].with_name(prefix + ".sepgen.npz"), prefix
