"""The code bytes of the generated model for one Arm core: ``<prefix>.c`` compiled to an object with
``arm-none-eabi-gcc`` and its sections read with ``arm-none-eabi-size``.

The object is not linked: what the firmware adds (startup, libc, libgcc helpers) is not counted, and
nothing the model needs is dropped (every function in ``<prefix>.c`` is reached from ``<prefix>_invoke``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import toolchain
from .toolchain import ToolchainError

CROSS_COMPILER = "arm-none-eabi-gcc"
CROSS_SIZE = "arm-none-eabi-size"
CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
#: Upper estimate of code bytes per computed layer when no cross compiler is there: the most measured with
#: these flags for the digits example and the DS-CNN KWS on cortex-m0plus/m3/m4/m7/m33/m55, layer and auto
#: schedules (420-910 B per computed layer).
ESTIMATED_CODE_BYTES_PER_LAYER = 910
#: The flags of the measurement (the optimisation level of sepgen's Cortex-M builds).
FLAGS = ("-std=c99", "-O2", "-mthumb", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class ObjectSizes:
    """Bytes of ``<prefix>.c``'s object for one core: code (``.text*``) and constants (``.rodata*`` and
    ``.data*``, whose initial values are stored in flash too)."""

    core: str
    code: int
    constants: int
    command: str  # how it was compiled, for the report


def available() -> bool:
    """True if the Arm cross compiler and size tool are on PATH."""
    try:
        toolchain.find_tool(CROSS_COMPILER, CROSS_PACKAGES)
        toolchain.find_tool(CROSS_SIZE, CROSS_PACKAGES)
    except ToolchainError:
        return False
    return True


def object_sizes(files: dict[str, str], prefix: str, core: str) -> ObjectSizes:
    """Compile ``files[<prefix>.c]`` (its headers beside it) for ``core`` (``cortex-m4`` ...) and measure it."""
    gcc = toolchain.find_tool(CROSS_COMPILER, CROSS_PACKAGES)
    size = toolchain.find_tool(CROSS_SIZE, CROSS_PACKAGES)
    flags = (f"-mcpu={core}", *FLAGS)
    with tempfile.TemporaryDirectory(prefix="sepgen-size-") as tmp:
        for name, text in files.items():
            if name.endswith((".c", ".h")) and "/" not in name:
                (Path(tmp) / name).write_text(text)
        proc = toolchain.run([gcc, *flags, "-c", f"{prefix}.c", "-o", "model.o"], cwd=tmp, timeout=300)
        if proc.returncode != 0:
            raise ToolchainError(f"{CROSS_COMPILER} failed for {core}: {proc.stderr.decode(errors='replace')[-2000:]}")
        proc = toolchain.run([size, "-A", "model.o"], cwd=tmp, timeout=60)
        if proc.returncode != 0:
            raise ToolchainError(f"{CROSS_SIZE} failed: {proc.stderr.decode(errors='replace').strip()}")
    code = constants = 0
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            if parts[0].startswith(".text"):
                code += int(parts[1])
            elif parts[0].startswith((".rodata", ".data")):
                constants += int(parts[1])
    return ObjectSizes(core, code, constants, f"{CROSS_COMPILER} {' '.join(flags)} -c {prefix}.c")
