"""The model's footprint in a linked Cortex-M ELF: code, per-layer weights and arena, from its symbol table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import toolchain
from ..ir import Graph
from ..toolchain import ToolchainError
from .build import build
from .targets import CROSS_PACKAGES, Target, get_target


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
    for index, layer in enumerate(graph.layers):  # every layer: aliasing ones have no arrays (0 bytes)
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
