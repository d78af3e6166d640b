"""Memory planning: tensor lifetimes -> offsets in one static arena.

The model input is read in place from the caller's buffer and the model output is
written straight into the caller's buffer, so neither occupies the arena.  Reshape
layers alias their input.  Every other tensor gets an arena offset chosen greedily
(largest first, lowest offset that does not overlap a tensor alive at the same
time), as TFLite Micro's GreedyMemoryPlanner does.  A layer's output never
overlaps its inputs: both are alive at that layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .ir import Graph

ALIGNMENT = 4  # bytes; every arena tensor starts on a 32-bit boundary


@dataclass(frozen=True)
class Location:
    """Where a tensor's bytes live: buffer is "input", "output" or "arena"; offset in bytes."""

    buffer: str
    offset: int = 0


@dataclass(frozen=True)
class MemoryPlan:
    arena_size: int  # bytes, == <PREFIX>_ARENA_SIZE
    locations: dict[str, Location]
    lifetimes: dict[str, tuple[int, int]]  # arena tensor -> (first layer index, last layer index)


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def storage_roots(graph: Graph) -> dict[str, str]:
    """Map every tensor to the tensor that owns its bytes (following aliasing layers)."""
    root = {graph.input: graph.input}
    for layer in graph.layers:
        root[layer.output] = root[layer.inputs[0]] if layer.aliases_input else layer.output
    return root


def place(sizes: dict[str, int], lifetimes: dict[str, tuple[int, int]], capacity: int | None = None,
          pinned: dict[str, int] | None = None) -> tuple[dict[str, int], int]:
    """Greedy placement of buffers (bytes, (first, last) step) in one arena: largest first, then by first
    step and name, each at the lowest aligned offset that overlaps no placed buffer alive at the same time.
    ``pinned`` buffers keep the offsets given; with a ``capacity``, a buffer that would end beyond it is
    left out (the caller places it elsewhere).  Returns ({buffer: offset}, arena size)."""
    pinned = pinned or {}
    placed = [(o, _align(sizes[n]), *lifetimes[n]) for n, o in pinned.items()]  # offset, size, first, last
    offsets: dict[str, int] = dict(pinned)
    for name in sorted((t for t in lifetimes if t not in pinned), key=lambda t: (-sizes[t], lifetimes[t][0], t)):
        size, (first, last) = _align(sizes[name]), lifetimes[name]
        offset = 0
        for o, s, f, l in sorted(p for p in placed if not (p[3] < first or p[2] > last)):
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        if capacity is not None and offset + sizes[name] > capacity:
            continue
        placed.append((offset, size, first, last))
        offsets[name] = offset
    return offsets, max((o + s for o, s, _, _ in placed), default=0)


def plan(graph: Graph) -> MemoryPlan:
    """Assign every tensor a Location; returns the arena size in bytes."""
    root = storage_roots(graph)
    out_root = root[graph.output]
    if out_root == graph.input:
        raise UserError(f"model '{graph.name}': its output is its input (nothing to compute)")
    lifetimes: dict[str, tuple[int, int]] = {}
    for index, layer in enumerate(graph.layers):
        owner = root[layer.output]
        if owner not in (graph.input, out_root):
            first, _ = lifetimes.get(owner, (index, index))
            lifetimes[owner] = (first, index)
        for name in layer.inputs:
            owner = root[name]
            if owner in lifetimes:
                lifetimes[owner] = (lifetimes[owner][0], index)
    offsets, arena = place({t: graph.tensors[t].size for t in lifetimes}, lifetimes)
    locations = {}
    for name in graph.tensors:
        owner = root[name]
        if owner == graph.input:
            locations[name] = Location("input")
        elif owner == out_root:
            locations[name] = Location("output")
        else:
            locations[name] = Location("arena", offsets[owner])
    return MemoryPlan(arena_size=arena, locations=locations, lifetimes=lifetimes)
