"""MicroPython on emulated Cortex-M: the backends of a model inside MicroPython's own ``ports/qemu`` firmware.

The firmware (:func:`sepgen.micropython.build.build_qemu_firmware`, cached per board) boots in QEMU with a
ROMFS image (the runner and the module's files, built with the source tree's ``tools/mpremote/mpremote/romfs.py``)
loaded at the board's ROMFS address; MicroPython mounts it at ``/rom``.  sepgen talks to the REPL on the UART
(QEMU's stdio) with MicroPython's raw-REPL protocol (Ctrl-A, code, Ctrl-D -> ``OK<stdout>\\x04<stderr>\\x04>``)
and sends one line, ``import sepgen_runner``.  QEMU runs with ``-icount`` so that ``time.ticks_us`` (SysTick on
the processor clock) counts executed instructions: 2^ICOUNT_SHIFT virtual ns each.
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import codegen
from ..cortexm.targets import ICOUNT_SHIFT, QEMU, QEMU_PACKAGE
from ..errors import UserError
from ..ir import Graph
from ..targets import default_schedule
from ..toolchain import ToolchainError, find_tool
from ..verification import VerifyResult
from .build import QEMU_BOARDS, build_natmod, build_qemu_firmware, cached_copy, mpy_cross
from .run import MicroPythonFailed, Run, check_constants, compare_outputs, parse, runner_script

#: ``--target`` name -> MicroPython's QEMU board.
TARGETS = {"micropython-cortex-m3": "MPS2_AN385", "micropython-cortex-m7": "MPS2_AN500",
           "micropython-cortex-m55": "MPS3_AN547"}
_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"


@dataclass(frozen=True)
class Board:
    target: str
    board: str  # MicroPython's board name (ports/qemu/boards/...)
    machine: str  # QEMU -machine
    arch: str  # natmod / mpy-cross architecture
    firmware: Path
    romfs_address: int


def board(target: str, src: str | Path | None = None) -> Board:
    """The firmware of ``target`` (built on first use) and where its ROMFS partition lives."""
    if target not in TARGETS:
        raise UserError(f"unknown MicroPython target '{target}' (choose from {', '.join(TARGETS)})")
    name = TARGETS[target]
    machine, arch = QEMU_BOARDS[name]
    elf = build_qemu_firmware(name, src)
    mk = (cached_copy(src) / "ports" / "qemu" / "boards" / name / "mpconfigboard.mk").read_text()
    found = re.search(r"^MICROPY_HW_ROMFS_PART0_START\s*\??=\s*(0x[0-9a-fA-F]+)", mk, re.M)
    if not found:
        raise ToolchainError(f"MicroPython board {name} has no ROMFS partition (MICROPY_HW_ROMFS_PART0_START)")
    return Board(target, name, machine, arch, elf, int(found.group(1), 16))


def romfs_image(files: dict[str, bytes], src: str | Path | None = None) -> bytes:
    """A ROMFS image holding ``files`` ({name: bytes}), made by the source tree's own ROMFS writer."""
    path = cached_copy(src) / "tools" / "mpremote" / "mpremote" / "romfs.py"
    spec = importlib.util.spec_from_file_location("sepgen_mpy_romfs", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ToolchainError(f"{path}: MicroPython's ROMFS writer is missing from the source tree")
    romfs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(romfs)
    writer = romfs.VfsRomWriter()
    for name in sorted(files):
        writer.mkfile(name, files[name])
    return writer.finalise()


def _talk(cmd: list[str], send: bytes, timeout: float) -> tuple[bytes, bytes]:
    """Start QEMU, send ``send`` to the UART, read until the raw REPL's answer ends; (stdout, stderr) of the code."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(send)
        proc.stdin.flush()
        while True:
            start = got.find(_RAW_BANNER)
            if start >= 0 and got.count(b"\x04", start) >= 2 and got.endswith(b"\x04>"):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise ToolchainError(f"MicroPython in QEMU did not answer within {timeout:.0f} s: "
                                     f"{got[-600:].decode(errors='replace')}")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise ToolchainError(f"QEMU exited ({proc.wait()}): {err[-600:]} {got[-600:]!r}")
                got += chunk
    finally:
        proc.kill()
        proc.wait()
    answer = got[got.find(_RAW_BANNER) + len(_RAW_BANNER):]
    if not answer.startswith(b"OK"):
        raise ToolchainError(f"MicroPython's raw REPL refused the code: {answer[:600]!r}")
    out, err, _ = answer[2:].split(b"\x04", 2)
    return out, err


def run_module(b: Board, module_files: dict[str, bytes], prefix: str, inputs: np.ndarray, copy: bool = True,
               timeout: float = 900.0, src: str | Path | None = None) -> Run:
    """Run the runner on ``b``'s firmware in QEMU with ``module_files`` (.mpy files for ``b.arch``) in ROMFS.

    ``copy``: import the module from a RAM file system holding copies of the files (as from a board's flash
    file system: the import copies code into the heap); else straight from ROMFS (constants and bytecode stay
    in flash, as after ``mpremote romfs deploy``)."""
    x = np.ascontiguousarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
    script = runner_script(prefix, x, "/rom" if copy else None, tuple(sorted(module_files)))
    out, err = run_romfs(b, {**module_files, "sepgen_runner.py": script.encode()}, timeout, src)
    return parse(1 if err.strip() else 0, out, err, x, prefix)


def run_romfs(b: Board, files: dict[str, bytes], timeout: float = 900.0,
              src: str | Path | None = None) -> tuple[str, str]:
    """Boot ``b``'s firmware in QEMU with ``files`` in ROMFS and ``import sepgen_runner`` (one of the files, .py or
    .mpy for ``b.arch``); (stdout, stderr) of that import, newlines as ``\\n``."""
    qemu = find_tool(QEMU, QEMU_PACKAGE)
    image = romfs_image(files, src)
    with tempfile.TemporaryDirectory(prefix="sepgen-mpy-qemu-") as tmp:
        (Path(tmp) / "romfs.img").write_bytes(image)
        cmd = [qemu, "-machine", b.machine, "-nographic", "-monitor", "null", "-semihosting",
               "-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off",
               "-device", f"loader,file={Path(tmp) / 'romfs.img'},addr={b.romfs_address:#x},force-raw=on",
               "-kernel", str(b.firmware)]
        out, err = _talk(cmd, b"\r\x03\x03\x01import sepgen_runner\x04", timeout)
    return out.decode(errors="replace").replace("\r\n", "\n"), err.decode(errors="replace")


def instructions(run: Run) -> int:
    """Executed instructions of one invoke: QEMU -icount advances 2^ICOUNT_SHIFT ns per instruction and
    ``time.ticks_us`` reads SysTick (±1 µs, i.e. about ±8 instructions; the 1 kHz tick interrupt is included)."""
    if run.invoke_us is None:
        raise MicroPythonFailed("the firmware reported no time.ticks_us measurement")
    return round(run.invoke_us * 1000 / (1 << ICOUNT_SHIFT))


def backend_files(graph: Graph, prefix: str, b: Board, c_files: dict[str, str],
                  src: str | Path | None = None) -> dict[str, dict[str, bytes]]:
    """{backend: {file name: bytes}} for ``b``: the natmod for its architecture, and the .py module compiled
    by mpy-cross for it, with its viper loops and alone (the plain fallback)."""
    from .sources import render

    natmod = build_natmod({**c_files, **render(graph, prefix, ("natmod",), list(c_files))}, prefix, b.arch, src)
    result = {f"natmod {b.arch}": {f"{prefix}.mpy": natmod.read_bytes()}}
    with tempfile.TemporaryDirectory(prefix="sepgen-mpy-cross-") as tmp:
        compiled = {}
        for name, text in render(graph, prefix, ("python",), []).items():
            (Path(tmp) / name).write_text(text)
            mpy = mpy_cross(Path(tmp) / name, b.arch, Path(tmp) / b.arch / (Path(name).stem + ".mpy"))
            compiled[mpy.name] = mpy.read_bytes()
    result["python (viper)"] = compiled
    result["python (plain)"] = {f"{prefix}.mpy": compiled[f"{prefix}.mpy"]}
    return result


def verify_backends(graph: Graph, inputs: np.ndarray, prefix: str, target: str, c_files: dict[str, str] | None = None,
                    src: str | Path | None = None, plain_inputs: int = 1) -> list[tuple[str, VerifyResult]]:
    """The natmod and the viper .py module (and the plain fallback on the first ``plain_inputs`` inputs) inside
    MicroPython on the emulated core, every output byte against the simulator (``c_files``: default the host
    C ``generate`` writes, its default schedule).  [(backend, result)]."""
    b = board(target, src)
    c_files = dict(c_files or codegen.render(graph, prefix, "host", default_schedule("host")))
    results = []
    for name, files in backend_files(graph, prefix, b, c_files, src).items():
        x = inputs[:plain_inputs] if name.endswith("(plain)") else inputs
        run = run_module(b, files, prefix, x, src=src)
        want = {"python (viper)": "viper", "python (plain)": "python"}.get(name, "c")
        if run.backend != want:
            raise MicroPythonFailed(f"{name}: the module ran as '{run.backend}', expected '{want}'")
        check_constants(graph, run, f"{name} on {b.target}")
        results.append((f"{name} on {target}", compare_outputs(graph, x, run.outputs)))
    return results
