"""Executed instructions (not cycles) per layer on a Cortex-M core, deterministic.

QEMU runs with ``-icount shift=7,align=off,sleep=off`` so virtual time advances 2^7 ns per executed
instruction, and the harness's trace hook reads SysTick (on the processor clock) after every computed
layer (:meth:`sepgen.ir.Graph.computed_layers`, in order; the harness checks the layer numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .. import codegen
from ..ir import Graph
from ..toolchain import ToolchainError
from ..verification import resolve_schedule
from .build import build, run_elf
from .targets import ICOUNT_SHIFT, Target, get_target


@dataclass(frozen=True)
class LayerProfile:
    name: str
    op: str
    instructions: int  # executed instructions (not cycles)
    macs: int
    index: int  # the layer's index in graph.layers (its number in the generated C)

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
    """Executed instructions per computed layer for the first of ``inputs`` (default: one seeded random input).

    Counts include the layer function's call and return; the cost of the measurement itself (one
    trace hook call, calibrated in the guest) is subtracted.
    """
    t = get_target(target)
    if inputs is None:
        shape = graph.tensors[graph.input].shape
        inputs = np.random.default_rng(0).integers(-128, 128, size=(1,) + shape).astype(np.int8)
    x = np.ascontiguousarray(inputs[:1], dtype=np.int8)
    schedule, reuse_input = resolve_schedule(files, prefix, None, False)
    elf = build(graph, t, prefix, files, mode="profile", schedule=schedule, reuse_input=reuse_input)
    raw = np.frombuffer(run_elf(elf, t, x.tobytes(), "profile.bin", icount=True, timeout=timeout), dtype="<u8")
    layers = _stamped(graph, schedule, reuse_input)
    if raw.size != 2 + len(layers) + 2:
        raise ToolchainError(f"{t.name}: firmware wrote {raw.size} profile stamps, expected {len(layers) + 4}")
    overhead = _instructions(raw[1] - raw[0], t)
    stamps = raw[2:]  # before invoke, after each computed layer (in computed_layers() order), after invoke
    counts = [_instructions(stamps[k + 1] - stamps[k], t) - overhead for k in range(len(layers))]
    total = _instructions(stamps[-1] - stamps[0], t) - len(layers) * overhead
    return Profile(t.name, t.board, tuple(LayerProfile(name, op, c, macs, index)
                                           for (index, name, op, macs), c in zip(layers, counts)), total, overhead)


def _stamped(graph: Graph, schedule: str, reuse_input: bool) -> list[tuple[int, str, str, int]]:
    """(layer number, name, op, MACs) per stamp: every computed layer; a streamed chain (sepgen.schedule) is
    stamped once, after its last layer, as "first..last" with op "streamed" and the chain's MACs."""
    rows, pending = [], []
    traced = {index for index, _ in codegen.traced_layers(graph, schedule, reuse_input)}
    for index, layer in graph.computed_layers():
        pending.append(layer)
        if index in traced:
            name = layer.name if len(pending) == 1 else f"{pending[0].name}..{layer.name}"
            op = layer.op if len(pending) == 1 else "streamed"
            rows.append((index, name, op, sum(p.macs() for p in pending)))
            pending = []
    return rows


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


def profile_to_json(p: Profile, sizes=None) -> dict:
    """The profile as one JSON-ready object: per-layer rows and totals (and the ELF sizes when given).

    ``{"target", "board", "unit": "executed instructions", "overhead_per_layer", "layers": [{"index",
    "name", "op", "instructions", "macs", "instructions_per_mac"}], "totals": {"instructions", "macs",
    "instructions_per_mac"}, "sizes": {...}}``; ``instructions_per_mac`` is null for layers without MACs.
    """
    def per_mac(instructions: int, macs: int):
        return round(instructions / macs, 4) if macs else None

    out = {
        "target": p.target, "board": p.board, "unit": "executed instructions", "overhead_per_layer": p.overhead,
        "layers": [{"index": layer.index, "name": layer.name, "op": layer.op, "instructions": layer.instructions,
                    "macs": layer.macs, "instructions_per_mac": per_mac(layer.instructions, layer.macs)}
                   for layer in p.layers],
        "totals": {"instructions": p.total, "macs": p.macs, "instructions_per_mac": per_mac(p.total, p.macs)},
    }
    if sizes is not None:
        out["sizes"] = {"code_bytes": sizes.code, "weights_bytes": sizes.weights_total, "flash_bytes": sizes.flash,
                        "arena_bytes": sizes.arena, "weights_per_layer": dict(sizes.weights),
                        "sections": dict(sizes.sections)}
    return out
