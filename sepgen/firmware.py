"""Cortex-M targets: cross-compile the generated C with our bare-metal harness and run it in QEMU.

* :func:`verify_target` -- the same byte-for-byte check as the host (every layer, every input),
  executed on the target instruction set (mps2-an386 / Cortex-M4F, mps2-an500 / Cortex-M7,
  mps3-an547 / Cortex-M55 with MVE).
* :func:`profile` -- executed *instructions* (not cycles) per layer, deterministic: QEMU runs with
  ``-icount shift=7,align=off,sleep=off`` so virtual time advances 2^7 ns per executed instruction,
  and the guest reads SysTick (on the processor clock) after every layer.
* :func:`sizes` -- code, weights and arena of the model, from the linked ELF's symbol table.

The firmware (startup, semihosting, linker scripts) is hand-written C in ``firmware/``; the harness
is ``templates/harness/cortexm.c.j2``.  Builds are cached by :func:`sepgen.toolchain.compile_executable`.
Inputs travel to the guest and outputs back through semihosting files in a temporary directory
(QEMU's working directory), so one ELF serves any number of inputs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import __version__, codegen, toolchain
from .ir import Graph
from .toolchain import ToolchainError
from .verification import VerifyResult, compare, parse_trace

CROSS_COMPILER = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
QEMU_PACKAGE = "qemu-system-arm"

# -pedantic C99 like the host build; per-symbol sections so that the link drops what is unused.
CROSS_FLAGS = toolchain.WARNINGS + ("-O2", "-mthumb", "-ffunction-sections", "-fdata-sections",
                                    "--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections", "-L", ".")
FIRMWARE_FILES = ("sepgen_firmware.h", "sepgen_semihost.h", "sepgen_semihost.c", "sepgen_startup.c",
                  "sepgen_sections.ld")
ICOUNT_SHIFT = 7  # virtual ns per instruction = 2^7
PROFILE_DEFINE = "SEPGEN_PROFILE"

# Exit codes of the firmware (sepgen_semihost.h)
_EXIT_MEANING = {1: "a semihosting file operation failed", 2: "invoke failed or a trace record was malformed",
                 3: "the firmware faulted"}


@dataclass(frozen=True)
class Target:
    name: str
    board: str  # QEMU -M
    cpu_flags: tuple[str, ...]
    sysclk_hz: int  # the board's processor clock, which drives SysTick in QEMU

    @property
    def ticks_per_instruction(self) -> Fraction:
        """SysTick ticks per executed instruction under -icount shift=ICOUNT_SHIFT (e.g. 3.2 at 25 MHz)."""
        return Fraction(self.sysclk_hz * (1 << ICOUNT_SHIFT), 10**9)


TARGETS: dict[str, Target] = {
    "cortex-m4": Target("cortex-m4", "mps2-an386", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                        25_000_000),
    "cortex-m7": Target("cortex-m7", "mps2-an500", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                        25_000_000),
    "cortex-m55": Target("cortex-m55", "mps3-an547", ("-mcpu=cortex-m55", "-mfloat-abi=hard"), 32_000_000),
}


def get_target(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown target '{target}' (choose from {', '.join(TARGETS)})") from None


def firmware_dir() -> Path:
    """``sepgen/firmware_src`` in an installed wheel, else the repository's ``firmware/``."""
    return codegen.data_dir("firmware_src", "firmware", "sepgen_startup.c")


def firmware_sources(target: Target) -> dict[str, str]:
    """Startup, semihosting and the board's linker script, as {filename: text}."""
    root = firmware_dir()
    return {name: (root / name).read_text() for name in (*FIRMWARE_FILES, f"{target.board}.ld")}


def traced_layers(graph: Graph) -> list[tuple[int, object]]:
    """(index in graph.layers, layer) of every layer that computes (and traces) an output."""
    return [(i, layer) for i, layer in enumerate(graph.layers) if not layer.aliases_input]


def render_harness(graph: Graph, prefix: str = "model") -> str:
    """The Cortex-M test program (templates/harness/cortexm.c.j2)."""
    return codegen.environment().get_template("harness/cortexm.c.j2").render(
        prefix=codegen.c_ident(prefix), PREFIX=prefix.upper(), version=__version__,
        trace_sizes=[graph.tensors[layer.output].size for _, layer in traced_layers(graph)])


def build(graph: Graph, target: str | Target, prefix: str = "model", files: dict[str, str] | None = None,
          mode: str = "verify") -> Path:
    """Cross-compile (cached) model + harness + firmware into an ELF.

    mode: "verify" (trace every layer's output), "profile" (SysTick stamps per layer) or "plain"
    (no trace hook calls: the model as a user would link it, for sizes).
    """
    t = get_target(target)
    compiler = toolchain.Compiler(toolchain.find_tool(CROSS_COMPILER, CROSS_PACKAGES))
    sources = dict(files or codegen.render(graph, prefix))
    sources["sepgen_harness.c"] = render_harness(graph, prefix)
    clash = set(sources) & set(firmware_sources(t))
    if clash:
        raise ToolchainError(f"generated file names clash with the firmware's: {', '.join(sorted(clash))}")
    sources.update(firmware_sources(t))
    defines = {"verify": (f"{prefix.upper()}_TRACE",), "profile": (f"{prefix.upper()}_TRACE", PROFILE_DEFINE),
               "plain": ()}[mode]
    flags = CROSS_FLAGS + t.cpu_flags + ("-T", f"{t.board}.ld")
    return toolchain.compile_executable(sources, flags, defines=defines, compiler=compiler)


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
               files: dict[str, str] | None = None, timeout: float = 300.0) -> dict[str, np.ndarray]:
    """Run the generated C on the target; same result layout as :func:`sepgen.verification.run_c`."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    elf = build(graph, target, prefix, files, mode="verify")
    raw = run_elf(elf, target, x.tobytes(), "trace.bin", timeout=timeout)
    return parse_trace(graph, raw, len(x), f"{get_target(target).name} firmware")


def verify_target(graph: Graph, inputs: np.ndarray, target: str | Target, prefix: str = "model",
                  files: dict[str, str] | None = None, timeout: float = 300.0) -> VerifyResult:
    """Cross-compile, run in QEMU on ``inputs`` and compare every layer with the simulator, byte for byte."""
    return compare(graph, inputs, run_target(graph, inputs, target, prefix, files, timeout))


# ---------------------------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class LayerProfile:
    name: str
    op: str
    instructions: int  # executed instructions (not cycles)
    macs: int

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None


@dataclass(frozen=True)
class Profile:
    """Executed instructions per layer on one input (QEMU -icount; identical on every run)."""

    target: str
    board: str
    layers: tuple[LayerProfile, ...]
    total: int  # the whole <prefix>_invoke call, measurement overhead removed
    overhead: int  # instructions of one measurement (trace hook call), subtracted from every layer

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def instructions_per_mac(self) -> float | None:
        return self.total / self.macs if self.macs else None


def _instructions(ticks: int, t: Target) -> int:
    # Ticks are floor(virtual_ns / clock period); > 1 tick per instruction, so rounding is exact.
    return round(Fraction(int(ticks)) / t.ticks_per_instruction)


def profile(graph: Graph, target: str | Target, prefix: str = "model", files: dict[str, str] | None = None,
            inputs: np.ndarray | None = None, timeout: float = 300.0) -> Profile:
    """Executed instructions per layer for the first of ``inputs`` (default: one seeded random input).

    Counts include the layer function's call and return; the cost of the measurement itself (one
    trace hook call, calibrated in the guest) is subtracted.
    """
    t = get_target(target)
    if inputs is None:
        shape = graph.tensors[graph.input].shape
        inputs = np.random.default_rng(0).integers(-128, 128, size=(1,) + shape).astype(np.int8)
    x = np.ascontiguousarray(inputs[:1], dtype=np.int8)
    elf = build(graph, t, prefix, files, mode="profile")
    raw = np.frombuffer(run_elf(elf, t, x.tobytes(), "profile.bin", icount=True, timeout=timeout), dtype="<u8")
    layers = traced_layers(graph)
    if raw.size != 2 + len(layers) + 2:
        raise ToolchainError(f"{t.name}: firmware wrote {raw.size} profile stamps, expected {len(layers) + 4}")
    overhead = _instructions(raw[1] - raw[0], t)
    stamps = raw[2:]
    counts = [_instructions(stamps[i + 1] - stamps[i], t) - overhead for i in range(len(layers))]
    total = _instructions(stamps[-1] - stamps[0], t) - len(layers) * overhead
    return Profile(t.name, t.board, tuple(LayerProfile(layer.name, layer.op, c, layer.macs())
                                           for (_, layer), c in zip(layers, counts)), total, overhead)


def format_profile(p: Profile) -> str:
    """A text table; says that these are executed instructions, not cycles."""
    rows = [(layer.name, layer.op, f"{layer.instructions:,}", f"{layer.macs:,}",
             "-" if layer.instructions_per_mac is None else f"{layer.instructions_per_mac:.2f}") for layer in p.layers]
    rows.append(("total (invoke)", "", f"{p.total:,}", f"{p.macs:,}",
                 "-" if p.instructions_per_mac is None else f"{p.instructions_per_mac:.2f}"))
    head = ("layer", "op", "instructions", "MACs", "instr/MAC")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    lines = [(f"{p.target} on QEMU {p.board}: executed instructions (not cycles), -icount shift={ICOUNT_SHIFT}; "
              f"measurement overhead of {p.overhead} instructions per layer removed")]
    for i, r in enumerate([head, *rows]):
        lines.append("  ".join(str(v).ljust(w) if j < 2 else str(v).rjust(w) for j, (v, w) in enumerate(zip(r, widths))))
        if i == 0 or i == len(rows) - 1:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ sizes


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # nm type letter: t/T code, r/R read-only data, b/B bss, d/D data
    size: int


@dataclass(frozen=True)
class Sizes:
    """The model's footprint in a linked Cortex-M ELF (bytes), from its symbol table."""

    target: str
    code: int  # .text of the model's functions (layer functions are usually inlined into <prefix>_invoke)
    weights: dict[str, int]  # layer name -> bytes of that layer's static const arrays
    arena: int  # the static arena symbol
    sections: dict[str, int]  # the whole firmware's .text/.rodata/.data/.bss (harness and libc included)

    @property
    def weights_total(self) -> int:
        return sum(self.weights.values())

    @property
    def flash(self) -> int:
        return self.code + self.weights_total


def symbols(elf: Path) -> list[Symbol]:
    nm = toolchain.find_tool("arm-none-eabi-nm", CROSS_PACKAGES)
    proc = toolchain.run([nm, "-S", "--size-sort", str(elf)], timeout=60)
    if proc.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-nm failed: {proc.stderr.decode(errors='replace').strip()}")
    result = []
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 4:
            result.append(Symbol(parts[3], parts[2], int(parts[1], 16)))
    return result


def section_sizes(elf: Path) -> dict[str, int]:
    size = toolchain.find_tool("arm-none-eabi-size", CROSS_PACKAGES)
    proc = toolchain.run([size, "-A", str(elf)], timeout=60)
    if proc.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-size failed: {proc.stderr.decode(errors='replace').strip()}")
    result = {}
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            result[parts[0]] = int(parts[1])
    return result


def sizes(graph: Graph, target: str | Target, prefix: str = "model", files: dict[str, str] | None = None) -> Sizes:
    """Code, per-layer weights and arena of the model as linked for ``target`` (no trace hooks)."""
    t = get_target(target)
    elf = build(graph, t, prefix, files, mode="plain")
    syms = symbols(elf)
    weights = {}
    for index, layer in enumerate(graph.layers):
        base = f"{prefix}_layer{index}_{layer.op}_"
        weights[layer.name] = sum(s.size for s in syms if s.kind in "rR" and s.name.startswith(base))
    code = sum(s.size for s in syms if s.kind in "tT" and s.name.startswith(prefix + "_")
               and s.name != f"{prefix}_trace")
    arena = sum(s.size for s in syms if s.kind in "bB" and s.name == f"{prefix}_arena")
    return Sizes(t.name, code, weights, arena, section_sizes(elf))


def format_sizes(s: Sizes) -> str:
    """A text summary: the model's flash (code + weights) and static RAM (arena), and the whole ELF's sections."""
    sections = ", ".join(f"{name} {s.sections.get(name, 0):,}" for name in (".text", ".rodata", ".data", ".bss"))
    return (f"{s.target}: model flash {s.flash:,} B (code {s.code:,} + weights {s.weights_total:,}), "
            f"static RAM {s.arena:,} B (arena); whole firmware: {sections}")
