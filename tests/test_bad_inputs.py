"""Every bad input a user can hand the command line: one line, exit 2, nothing lost, nothing half-written.

One table row per case.  Each row runs in a fresh folder holding the user's files (a float
``.npz`` model, calibration data, notes, a sub-folder, an int8 ``.tflite``, and a directory
written by ``sepgen generate``), sets up its own bad input, runs ``sepgen`` in-process, and
asserts:

* the exit status (2 for a user error),
* stderr is exactly one line ``sepgen: error: ...`` containing the row's expected words
  (naming the file or layer), with no traceback,
* every file and folder that existed before is byte-for-byte and mode-for-mode unchanged, and
  no file or folder appeared (no partial output, no leftover temporary files).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from conftest import require_module

from sepgen.cli import main
from sepgen.frontends.numpy import save_npz_model

SHAPE = (6, 6, 2)


# ------------------------------------------------------------------ the user's folder
def tiny_spec(strides=1) -> tuple[dict, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {"c.k": rng.normal(size=(3, 3, 2, 4)).astype(np.float32), "c.b": np.zeros(4, np.float32),
              "dw.k": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
              "fc.k": rng.normal(size=(4, 3)).astype(np.float32)}
    spec = {"format": "sepgen-npz", "version": 1, "name": "tiny", "input_shape": list(SHAPE),
            "layers": [{"name": "c", "type": "conv2d", "kernel": "c.k", "bias": "c.b", "padding": "same",
                        "activation": "relu", "strides": strides},
                       {"name": "dw", "type": "depthwise_conv2d", "kernel": "dw.k", "padding": "same"},
                       {"name": "gap", "type": "global_avg_pool2d"},
                       {"name": "fc", "type": "dense", "kernel": "fc.k"}]}
    return spec, arrays


def tflite_spec(input_scale=0.05, output_scale=0.1, weight_scale=0.01) -> dict:
    """A one-layer int8 conv .tflite spec (tests/tflite_build.py format)."""
    w = np.random.default_rng(1).integers(-127, 128, size=(3, 1, 1, 2)).tolist()
    return {"input": {"shape": [4, 4, 2], "scale": input_scale, "zero_point": -3},
            "layers": [{"op": "CONV_2D", "weights": w, "weight_scales": [weight_scale] * 3, "bias": [5, -7, 0],
                        "stride": [1, 1], "dilation": [1, 1], "padding": "VALID", "activation": "NONE",
                        "output": {"scale": output_scale, "zero_point": 2}}]}


def write_tflite(path: Path, spec: dict) -> Path:
    require_module("tflite_micro")
    from tflite_build import build

    path.write_bytes(build(spec))
    return path


def write_tanh_tflite(path: Path) -> Path:
    """An int8 .tflite whose one op (TANH) sepgen does not support."""
    require_module("tflite_micro")
    from tflite_build import FlatModel

    fm = FlatModel()
    x = fm.activation("x", (4,), 0.05, 0)
    y = fm.activation("y", (4,), 1.0 / 128, 0)
    fm.operator("TANH", [x], [y])
    path.write_bytes(fm.finish([x], [y]))
    return path


@pytest.fixture(scope="module")
def generated_template(tmp_path_factory) -> Path:
    """A folder with the user's files and a 'gen' directory written by sepgen generate (copied per row)."""
    root = tmp_path_factory.mktemp("template")
    spec, arrays = tiny_spec()
    save_npz_model(root / "tiny.npz", spec, arrays)
    np.save(root / "cal.npy", np.random.default_rng(2).normal(size=(16,) + SHAPE).astype(np.float32))
    (root / "notes.txt").write_text("my notes\n")
    (root / "sub").mkdir()
    (root / "sub" / "keep.c").write_text("int keep;\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["generate", "tiny.npz", "--calibration", "cal.npy", "-o", "gen", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def folder(generated_template, tmp_path, monkeypatch) -> Path:
    import shutil

    work = tmp_path / "work"
    shutil.copytree(generated_template, work, symlinks=True)
    monkeypatch.chdir(work)
    return work


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: (kind, mode, sha256 or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return found


# ------------------------------------------------------------------ setups (each returns argv)
def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _npz_with(folder: Path, name: str, mutate: Callable[[dict, dict], None]) -> str:
    spec, arrays = tiny_spec()
    mutate(spec, arrays)
    save_npz_model(folder / name, spec, arrays)
    return name


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _raw_npz_spec(folder: Path, name: str, text: str) -> str:
    spec, arrays = tiny_spec()
    with zipfile.ZipFile(folder / name, "w") as zf:
        for key, value in arrays.items():
            with zf.open(key + ".npy", "w") as member:
                np.lib.format.write_array(member, value, allow_pickle=False)
        with zf.open("__spec__.npy", "w") as member:
            np.lib.format.write_array(member, np.frombuffer(text.encode(), np.uint8), allow_pickle=False)
    return name


def _keras_model_file(folder: Path, suffix: str, poison: str | None = None, custom: bool = False) -> str:
    keras = require_module("keras")
    L = keras.layers
    layers = [keras.Input(SHAPE), L.Conv2D(3, 1, name="conv"), L.GlobalAveragePooling2D(name="gap")]
    if custom:
        @keras.saving.register_keras_serializable(package="user")
        class Twice(L.Layer):
            def call(self, x):
                return x * 2

        layers.insert(2, Twice(name="twice"))
    model = keras.Sequential(layers, name="m")
    if poison is not None:
        kernel = model.get_layer("conv").kernel
        value = np.asarray(kernel.numpy())
        value[0, 0, 0, 0] = {"nan": np.nan, "inf": np.inf}[poison]
        kernel.assign(value)
    path = folder / f"model{suffix}"
    model.save(path)
    return path.name


def _pickled_npy(folder: Path, name: str) -> str:
    np.save(folder / name, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return name


def _array(folder: Path, name: str, value: np.ndarray) -> str:
    np.save(folder / name, value)
    return name


@dataclass(frozen=True)
class Row:
    id: str
    setup: Callable[[Path], list[str]]
    expect: tuple[str, ...]  # words the one line must contain
    status: int = 2
    needs: str | None = None  # a Python package the row needs (keras / tflite_micro)


GEN = ["--calibration", "cal.npy", "--quiet"]
ROWS = [
    # ---- output paths that would destroy the user's files
    Row("o-current-folder", lambda f: ["generate", "tiny.npz", *GEN, "-o", "."], ("contains the input file",
                                                                                  "tiny.npz")),
    Row("o-parent-of-input", lambda f: (f / "in").mkdir() or (f / "in" / "t.npz").write_bytes(
        (f / "tiny.npz").read_bytes()) and ["generate", "in/t.npz", *GEN, "-o", "."], ("contains the input file",)),
    Row("o-folder-with-user-files", lambda f: ["generate", "tiny.npz", *GEN, "-o", "sub"],
        ("sub", "not written by sepgen", "keep.c")),
    Row("o-symlink-to-user-folder", lambda f: os.symlink("sub", f / "link") or
        ["generate", "tiny.npz", *GEN, "-o", "link"], ("link", "not written by sepgen")),
    Row("o-regular-file", lambda f: ["generate", "tiny.npz", *GEN, "-o", "notes.txt"], ("notes.txt", "is a file")),
    Row("o-below-a-file", lambda f: ["generate", "tiny.npz", *GEN, "-o", "notes.txt/sub"],
        ("notes.txt", "not a directory")),
    Row("o-broken-symlink", lambda f: os.symlink("nowhere", f / "dangling") or
        ["generate", "tiny.npz", *GEN, "-o", "dangling"], ("dangling", "broken symbolic link")),
    Row("o-sepgen-dir-with-user-file", lambda f: (f / "gen" / "mine.txt").write_text("x") and
        ["generate", "tiny.npz", *GEN, "-o", "gen", "--force"], ("mine.txt", "sepgen did not write")),
    Row("o-sepgen-dir-edited-file", lambda f: (f / "gen" / "model.c").write_text("/* edited */\n") and
        ["generate", "tiny.npz", *GEN, "-o", "gen"], ("model.c", "changed since", "--force")),
    Row("o-sepgen-dir-holds-input", lambda f: ["generate", "gen/model.sepgen.npz", "-o", "gen"],
        ("contains the input file",)),
    Row("html-is-a-directory", lambda f: ["report", "gen", "--html", "sub"], ("sub", "directory")),
    Row("html-user-file", lambda f: ["report", "gen", "--html", "notes.txt"], ("notes.txt", "--force")),
    Row("html-is-input", lambda f: ["report", "tiny.npz", "--html", "tiny.npz", "--force"], ("input file",)),
    Row("simulate-output-user-file", lambda f: [
        "simulate", "gen", "--input", _array(f, "x.npy", np.zeros((2,) + SHAPE, np.int8)), "--output", "notes.txt"],
        ("notes.txt", "--force")),
    Row("simulate-output-is-input", lambda f: [
        "simulate", "gen", "--input", _array(f, "x.npy", np.zeros((2,) + SHAPE, np.int8)), "--output", "x.npy",
        "--force"], ("x.npy", "input file")),
    # ---- calibration data
    Row("calibration-empty-file", lambda f: (f / "empty.npy").write_bytes(b"") or
        ["generate", "tiny.npz", "--calibration", "empty.npy", "-o", "out"], ("empty.npy", "empty")),
    Row("calibration-truncated", lambda f: _truncate(f / "cal.npy") or
        ["generate", "tiny.npz", "--calibration", "cal.npy", "-o", "out"], ("cal.npy", "not a readable .npy")),
    Row("calibration-missing", lambda f: ["generate", "tiny.npz", "--calibration", "nope.npy", "-o", "out"],
        ("nope.npy", "no such")),
    Row("calibration-not-given", lambda f: ["generate", "tiny.npz", "-o", "out"], ("tiny.npz", "--calibration")),
    Row("calibration-nan", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration", _array(
        f, "nan.npy", np.full((4,) + SHAPE, np.nan, np.float32))], ("nan.npy", "NaN")),
    Row("calibration-inf", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration", _array(
        f, "inf.npy", np.full((4,) + SHAPE, np.inf, np.float32))], ("inf.npy", "infinite")),
    Row("calibration-unbatched-wrong-shape", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration",
                                                        _array(f, "c.npy", np.zeros((6, 6), np.float32))],
        ("c.npy", "shape (6, 6)", "(N, 6, 6, 2)")),
    Row("calibration-zero-samples", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration",
                                               _array(f, "c.npy", np.zeros((0,) + SHAPE, np.float32))],
        ("c.npy", "0 samples")),
    Row("calibration-huge-values", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration",
                                              _array(f, "c.npy", np.full((4,) + SHAPE, 3e38, np.float32))],
        ("overflow", "calibration")),
    Row("calibration-complex", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration",
                                          _array(f, "c.npy", np.zeros((4,) + SHAPE, np.complex64))],
        ("c.npy", "complex")),
    Row("calibration-pickle", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration",
                                         _pickled_npy(f, "p.npy")], ("p.npy", "pickle")),
    Row("calibration-is-npz", lambda f: ["generate", "tiny.npz", "-o", "out", "--calibration", "tiny.npz"],
        ("tiny.npz", ".npz archive")),
    # ---- verification / simulation inputs
    Row("inputs-wrong-shape", lambda f: ["verify", "gen", "--inputs",
                                         _array(f, "x.npy", np.zeros((3, 6, 5, 2), np.int8))],
        ("x.npy", "(3, 6, 5, 2)", "(N, 6, 6, 2)")),
    Row("inputs-no-batch-axis", lambda f: ["verify", "gen", "--inputs", _array(f, "x.npy", np.zeros((6, 2), np.int8))],
        ("x.npy", "(6, 2)", "batch first")),
    Row("inputs-out-of-int8-range", lambda f: ["verify", "gen", "--inputs",
                                               _array(f, "x.npy", np.full((1,) + SHAPE, 300, np.int16))],
        ("x.npy", "[-128, 127]")),
    Row("inputs-pickle", lambda f: ["verify", "gen", "--inputs", _pickled_npy(f, "p.npy")], ("p.npy", "pickle")),
    Row("simulate-input-wrong-shape", lambda f: [
        "simulate", "gen", "--input", _array(f, "x.npy", np.zeros((2, 3), np.int8)), "--output", "y.npy"],
        ("x.npy", "(N, 6, 6, 2)")),
    Row("count-zero", lambda f: ["verify", "gen", "--count", "0"], ("--count", "1..")),
    # ---- prefixes
    Row("prefix-reserved-header", lambda f: ["generate", "tiny.npz", *GEN, "-o", "out", "--prefix",
                                             "sepgen_fixedpoint"], ("sepgen_fixedpoint", "reserved")),
    Row("prefix-300-chars", lambda f: ["generate", "tiny.npz", *GEN, "-o", "out", "--prefix", "p" * 300],
        ("300 characters",)),
    Row("prefix-leading-underscore", lambda f: ["generate", "tiny.npz", *GEN, "-o", "out", "--prefix", "_x"],
        ("'_x'", "letter")),
    Row("prefix-keyword", lambda f: ["generate", "tiny.npz", *GEN, "-o", "out", "--prefix", "int"],
        ("'int'", "keyword")),
    # ---- .npz models
    Row("npz-huge-strides", lambda f: ["generate", _npz_with(f, "s.npz", lambda s, a: s["layers"][0].update(
        strides=10**30)), *GEN, "-o", "out"], ("s.npz", "layer 'c'", "strides")),
    Row("npz-spec-nested-deeply", lambda f: ["generate", _raw_npz_spec(f, "deep.npz", _nested(100_000)),
                                             *GEN, "-o", "out"], ("deep.npz", "nested too deeply")),
    Row("npz-nan-weights", lambda f: ["generate", _npz_with(f, "n.npz", lambda s, a: a["c.k"].__setitem__(
        (0, 0, 0, 0), np.nan)), *GEN, "-o", "out"], ("n.npz", "layer 'c'", "NaN")),
    Row("npz-unsupported-layer", lambda f: ["generate", _npz_with(f, "u.npz", lambda s, a: s["layers"].insert(
        1, {"name": "rnn", "type": "lstm"})), *GEN, "-o", "out"], ("u.npz", "layer 'rnn'", "supported:")),
    Row("npz-truncated", lambda f: _truncate(f / "tiny.npz") or ["generate", "tiny.npz", *GEN, "-o", "out"],
        ("tiny.npz", "not a readable .npz")),
    Row("npz-object-array", lambda f: zipfile.ZipFile(f / "tiny.npz", "a").writestr(
        "evil.npy", (f / _pickled_npy(f, "p.npy")).read_bytes()) or ["generate", "tiny.npz", *GEN, "-o", "out"],
        ("tiny.npz", "evil", "pickle")),
    Row("npz-is-text", lambda f: (f / "t.npz").write_text("hello") and ["generate", "t.npz", *GEN, "-o", "out"],
        ("t.npz", "not a .npz")),
    Row("model-unknown-suffix", lambda f: ["generate", "notes.txt", *GEN, "-o", "out"],
        ("notes.txt", "unsupported model file type")),
    Row("model-is-generated-dir", lambda f: ["generate", "gen", *GEN, "-o", "out"], ("gen", "directory")),
    # ---- generated directories
    Row("gen-truncated-npz", lambda f: _truncate(f / "gen" / "model.sepgen.npz") or ["verify", "gen"],
        ("model.sepgen.npz", "corrupt")),
    Row("gen-missing-npz", lambda f: (f / "gen" / "model.sepgen.npz").unlink() or ["simulate", "gen", "--input",
                                                                                   "cal.npy", "--output", "y.npy"],
        ("model.sepgen.npz", "missing")),
    Row("gen-corrupt-json", lambda f: (f / "gen" / "model.sepgen.json").write_text("{not json") and
        ["verify", "gen"], ("model.sepgen.json", "unreadable")),
    Row("gen-json-wrong-content", lambda f: (f / "gen" / "model.sepgen.json").write_text(json.dumps(
        {**json.loads((f / "gen" / "model.sepgen.json").read_text()), "layers": [{"op": "nope"}]})) and
        ["report", "gen"], ("model.sepgen.json", "inconsistent")),
    Row("gen-json-huge-shift", lambda f: _edit_json_shift(f) or ["verify", "gen"], ("shift",)),
    Row("not-a-generated-dir", lambda f: ["verify", "sub"], ("sub", "sepgen generate")),
    # ---- .tflite models
    Row("tflite-output-scale-zero", lambda f: ["generate", str(write_tflite(f / "z.tflite", tflite_spec(
        output_scale=0.0)).name), "-o", "out"], ("z.tflite", "scale"), needs="tflite_micro"),
    Row("tflite-output-scale-inf", lambda f: ["generate", str(write_tflite(f / "i.tflite", tflite_spec(
        output_scale=float("inf"))).name), "-o", "out"], ("i.tflite", "scale"), needs="tflite_micro"),
    Row("tflite-scale-over-2^70", lambda f: ["generate", str(write_tflite(f / "s.tflite", tflite_spec(
        output_scale=0.1 / 2**70)).name), "-o", "out"], ("s.tflite", "shift", "[-31, 30]"), needs="tflite_micro"),
    Row("tflite-scale-denormal", lambda f: ["generate", str(write_tflite(f / "d.tflite", tflite_spec(
        output_scale=1e-45)).name), "-o", "out"], ("d.tflite", "shift"), needs="tflite_micro"),
    Row("tflite-verify-wrong-inputs", lambda f: ["verify", str(write_tflite(f / "m.tflite", tflite_spec()).name),
                                                 "--inputs", _array(f, "x.npy", np.zeros((4, 2), np.int8))],
        ("x.npy", "(N, 4, 4, 2)"), needs="tflite_micro"),
    Row("tflite-truncated", lambda f: _truncate(write_tflite(f / "t.tflite", tflite_spec())) or
        ["generate", "t.tflite", "-o", "out"], ("t.tflite",), needs="tflite_micro"),
    Row("tflite-unsupported-op", lambda f: ["generate", write_tanh_tflite(f / "tanh.tflite").name, "-o", "out"],
        ("tanh.tflite", "op TANH", "supported:"), needs="tflite_micro"),
    Row("tflite-not-flatbuffer", lambda f: (f / "n.tflite").write_bytes(b"\0" * 64) and
        ["generate", "n.tflite", "-o", "out"], ("n.tflite", "not a TFLite flatbuffer"), needs="tflite_micro"),
    # ---- Keras models
    Row("keras-nan-weights", lambda f: ["generate", _keras_model_file(f, ".keras", poison="nan"), *GEN, "-o", "out"],
        ("model.keras", "layer 'conv'", "NaN"), needs="keras"),
    Row("h5-inf-weights", lambda f: ["generate", _keras_model_file(f, ".h5", poison="inf"), *GEN, "-o", "out"],
        ("model.h5", "layer 'conv'", "infinite"), needs="keras"),
    Row("keras-custom-layer", lambda f: ["report", _keras_model_file(f, ".keras", custom=True)],
        ("model.keras", "layer 'twice'", "custom class 'Twice'", "supported:"), needs="keras"),
    Row("keras-truncated", lambda f: _truncate(f / _keras_model_file(f, ".keras")) or ["report", "model.keras"],
        ("model.keras",), needs="keras"),
    Row("h5-truncated", lambda f: _truncate(f / _keras_model_file(f, ".h5")) or ["report", "model.h5"],
        ("model.h5",), needs="keras"),
]


def _edit_json_shift(folder: Path) -> None:
    """Hand-edit the saved graph so a conv requantization shift becomes 64 (the .npz holds the shifts)."""
    path = folder / "gen" / "model.sepgen.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = next(k for k in arrays if k.endswith("requant.shift"))
    arrays[key] = np.full_like(arrays[key], 64)
    np.savez(path, **arrays)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_and_touches_nothing(row: Row, folder: Path, capsys):
    if row.needs:
        require_module(row.needs)
    argv = row.setup(folder)
    capsys.readouterr()
    before = snapshot(folder)
    status = main(argv)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == row.status, err
    assert len(lines) == 1 and lines[0].startswith("sepgen: error: "), err
    assert "Traceback" not in err
    for word in row.expect:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert snapshot(folder) == before, "files changed or appeared"


def test_every_row_id_is_unique():
    assert len({r.id for r in ROWS}) == len(ROWS) >= 55


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_missing_compiler_is_a_user_error(target, folder, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(folder / "no-tools-here"))
    monkeypatch.delenv("CC", raising=False)
    before = snapshot(folder)
    assert main(["verify", "gen", "--target", target]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and ("not found" in lines[0] or "no C compiler" in lines[0]), lines
    assert snapshot(folder) == before
