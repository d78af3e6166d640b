"""Cross-compile model + harness + firmware into an ELF, run it in QEMU, verify it against the simulator.

Builds are cached by :func:`sepgen.toolchain.compile_executable`.  Inputs travel to the guest and
outputs back through semihosting files in a temporary directory (QEMU's working directory), so one
ELF serves any number of inputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .. import codegen, toolchain
from ..errors import UserError
from ..ir import Graph
from ..toolchain import ToolchainError
from ..verification import VerifyResult, compare, parse_trace, resolve_schedule
from .targets import (CROSS_COMPILER, CROSS_FLAGS, CROSS_PACKAGES, ICOUNT_SHIFT, PROFILE_DEFINE, QEMU, QEMU_PACKAGE,
                      Target, firmware_sources, get_target)

class BoardTooSmall(ToolchainError, UserError):
    """The model does not fit the memory of the QEMU board that runs the target (a user error: exit 2)."""


# Exit codes of the firmware (sepgen_semihost.h)
_EXIT_MEANING = {1: "a semihosting file operation failed", 2: "invoke failed or a trace record was malformed",
                 3: "the firmware faulted"}


def build(graph: Graph, target: str | Target, prefix: str = "model", files: dict[str, str] | None = None,
          mode: str = "verify", schedule: str | None = None, reuse_input: bool = False) -> Path:
    """Cross-compile (cached) model + harness + firmware into an ELF.

    mode: "verify" (trace every layer's output), "profile" (SysTick stamps per layer) or "plain"
    (no trace hook calls: the model as a user would link it, for sizes).  ``schedule``/``reuse_input``:
    as for :func:`sepgen.codegen.render` (None: read from ``files``; they decide the traced layers).
    """
    t = get_target(target)
    compiler = toolchain.Compiler(toolchain.find_tool(CROSS_COMPILER, CROSS_PACKAGES))
    schedule, reuse_input = resolve_schedule(files, prefix, schedule, reuse_input)
    sources = dict(files or codegen.render(graph, prefix, t.name, schedule, reuse_input))
    sources["sepgen_harness.c"] = codegen.render_harness(graph, prefix, "cortexm", schedule, reuse_input)
    clash = set(sources) & set(firmware_sources(t))
    if clash:
        raise ToolchainError(f"generated file names clash with the firmware's: {', '.join(sorted(clash))}")
    sources.update(firmware_sources(t))
    defines = {"verify": (f"{prefix.upper()}_TRACE",), "profile": (f"{prefix.upper()}_TRACE", PROFILE_DEFINE),
               "plain": ()}[mode]
    memory_map = t.memory_maps[-1] if mode == "plain" else t.board
    flags = CROSS_FLAGS + t.cpu_flags + ("-T", f"{memory_map}.ld")
    try:
        return toolchain.compile_executable(sources, flags, defines=defines, compiler=compiler)
    except ToolchainError as e:
        if "overflowed" not in str(e) or memory_map != t.board:
            raise
        raise BoardTooSmall(f"{t.name}: the model does not fit in the memory of QEMU's {t.board} board "
                             f"(firmware/{t.board}.ld): generate it with --schedule stream, or run it on a core whose QEMU "
                             f"board has more memory") from None


def run_elf(elf: Path, target: str | Target, inputs: bytes, output_name: str, icount: bool = False,
            timeout: float = 300.0) -> bytes:
    """Run a harness ELF in QEMU with ``inputs`` as inputs.bin; returns the bytes it wrote to ``output_name``."""
    t = get_target(target)
    qemu = toolchain.find_tool(QEMU, QEMU_PACKAGE)
    cmd = [qemu, "-M", t.board, "-nographic", "-monitor", "none", "-serial", "null",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if icount:
        cmd[1:1] = ["-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off"]
    with tempfile.TemporaryDirectory(prefix="sepgen-qemu-") as tmp:
        (Path(tmp) / "inputs.bin").write_bytes(inputs)
        proc = toolchain.run(cmd, timeout=timeout, cwd=tmp)
        if proc.returncode != 0:
            said = " ".join((proc.stdout + proc.stderr).decode(errors="replace").split())[-400:]
            meaning = _EXIT_MEANING.get(proc.returncode, "QEMU failed")
            raise ToolchainError(f"{t.name} ({t.board}): exit status {proc.returncode}, {meaning}: {said}")
        out = Path(tmp) / output_name
        if not out.is_file():
            raise ToolchainError(f"{t.name} ({t.board}): the firmware wrote no {output_name}")
        return out.read_bytes()


def run_target(graph: Graph, inputs: np.ndarray, target: str | Target, prefix: str = "model",
               files: dict[str, str] | None = None, timeout: float = 300.0,
               schedule: str | None = None, reuse_input: bool = False) -> dict[str, np.ndarray]:
    """Run the generated C on the target; same result layout as :func:`sepgen.verification.run_c`."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    schedule, reuse_input = resolve_schedule(files, prefix, schedule, reuse_input)
    elf = build(graph, target, prefix, files, mode="verify", schedule=schedule, reuse_input=reuse_input)
    raw = run_elf(elf, target, x.tobytes(), "trace.bin", timeout=timeout)
    return parse_trace(graph, raw, len(x), f"{get_target(target).name} firmware", schedule, reuse_input)


def verify_target(graph: Graph, inputs: np.ndarray, target: str | Target, prefix: str = "model",
                  files: dict[str, str] | None = None, timeout: float = 300.0,
                  schedule: str | None = None, reuse_input: bool = False) -> VerifyResult:
    """Cross-compile, run in QEMU on ``inputs`` and compare every traced layer with the simulator, byte for byte."""
    return compare(graph, inputs, run_target(graph, inputs, target, prefix, files, timeout, schedule, reuse_input))
