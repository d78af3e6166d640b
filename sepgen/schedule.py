"""Execution schedules: whole tensors layer by layer, or chains of layers streamed row by row.

A *chain* is a run of consecutive layers where each one reads only the previous one's output and
nothing else reads it: convolutions (conv2d, including the 1x1 pointwise, and depthwise_conv2d) and
pooling windows (max_pool2d, avg_pool2d), ended optionally by a global reduction (avg_pool2d whose
window is the whole input, or mean).  A
streamed chain runs as one *stage* of ``steps``: in every step the layers run from first to last, each
computing its next output row if the input rows that row reads are ready (at most one row per layer
and step, so rows flow through without bursts; rows no later layer reads are not computed).  A tensor
inside the chain never exists whole: it lives in a *ring* of ``R`` rows, row ``y`` in slot ``y % R``,
and ``R`` is the largest number of rows alive at once (the next layer's window, kh rows for a
stride-1 'same' 3x3 kernel, its stride, dilation and top/bottom padding taken into account).  A
global reduction sums its input rows into an int32 buffer (4 bytes per channel) as they arrive.
Every output value is computed exactly once with the same arithmetic as the whole-tensor kernels,
so outputs are byte-identical; no row is recomputed (extra MACs: 0).

The memory plan (:func:`sepgen.plan.place`) then places, per stage, the whole tensors alive across
stages plus the stage's rings and sums.  Or (:mod:`sepgen.rowplace`) it places the whole tensors and
sums that way and then every row of a chain-internal tensor on its own, wherever arena bytes are free
from the row step that writes it to the last that reads it: rows of different tensors share bytes over
time, and rows of a whole tensor the stage has not written yet, or has read for the last time, are free
too.  The generated C then finds such rows through a table of row offsets.  A schedule takes whichever
placement needs the smaller arena (the rings on a tie).  Modes: ``layer`` (every layer its own stage, as
:func:`sepgen.plan.plan`), ``stream`` (every chain of two or more layers streamed whole) and ``auto``: starting from
``stream``, a local search that cuts chains into shorter streamed runs (the layer at a cut writes its
output whole) or leaves a run whole, as long as the arena shrinks; the layer schedule if nothing
streamed is smaller.  Deep low-resolution layers often do better whole: their rings add up (one
window of rows per layer of the run) beyond two whole tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ir import Graph, Layer
from .plan import ALIGNMENT, Location, place, plan, storage_roots
from .rowplace import Block, peak_bytes, stage_rows

MODES = ("layer", "stream", "auto")
WINDOWED = ("conv2d", "depthwise_conv2d")
POOLS = ("max_pool2d", "avg_pool2d")


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def is_reducer(layer: Layer) -> bool:
    """A global reduction over height and width that can sum its input rows as they arrive."""
    if layer.op == "mean":
        return True
    return (layer.op == "avg_pool2d" and tuple(layer.output_shape[:2]) == (1, 1)
            and tuple(layer.pool_size) == tuple(layer.input_shape[:2]))


@dataclass(frozen=True)
class RowMap:
    """Which input rows output row y reads: [max(0, y*stride - pad), min(in_h-1, y*stride - pad + span-1)]."""

    out_h: int  # output rows (a reduction: its input rows, one per step of its sum)
    in_h: int
    stride: int = 1
    pad: int = 0
    span: int = 1  # (kernel - 1) * dilation + 1

    def lo(self, y: int) -> int:
        return max(0, y * self.stride - self.pad)

    def hi(self, y: int) -> int:
        return min(self.in_h - 1, y * self.stride - self.pad + self.span - 1)


def row_map(layer: Layer) -> RowMap | None:
    """The row dependencies of a streamable layer, or None if it needs its input whole."""
    if is_reducer(layer):
        return RowMap(layer.input_shape[0], layer.input_shape[0])
    if layer.op in WINDOWED:
        return RowMap(layer.output_shape[0], layer.input_shape[0], layer.strides[0], layer.pads()[0],
                      (layer.kernel_size[0] - 1) * layer.dilation[0] + 1)
    if layer.op in POOLS:
        return RowMap(layer.output_shape[0], layer.input_shape[0], layer.strides[0], layer.pads()[0],
                      layer.pool_size[0])
    return None


def chains(graph: Graph) -> list[list[int]]:
    """Maximal runs (layer indices) of two or more streamable layers, each reading only its predecessor."""
    found: list[list[int]] = []
    current: list[int] = []
    for index, layer in graph.computed_layers():
        prev = graph.layers[current[-1]] if current else None
        joins = (prev is not None and row_map(layer) is not None and not is_reducer(prev)
                 and layer.inputs == (prev.output,) and prev.output != graph.output
                 and len(graph.consumers(prev.output)) == 1)
        if joins:
            current.append(index)
            continue
        if len(current) > 1:
            found.append(current)
        current = [index] if row_map(layer) is not None and not is_reducer(layer) else []
    if len(current) > 1:
        found.append(current)
    return found


@dataclass(frozen=True)
class Stream:
    """A streamed chain: ``counts[t][i]`` = rows of layer i's output done after step t (counts[0]: none)."""

    layers: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]
    rings: tuple[int, ...]  # rows kept of each layer's output but the last (chain-internal tensors)

    @property
    def steps(self) -> int:
        return len(self.counts) - 1


def stream(graph: Graph, chain: list[int]) -> Stream:
    """Step table and ring sizes of a chain (module docstring); checked by replaying it on row tags."""
    maps = [row_map(graph.layers[i]) for i in chain]
    n = len(maps)
    need = [0] * n  # rows of each output that are ever read (the last layer: all)
    need[-1] = maps[-1].out_h
    for i in range(n - 2, -1, -1):
        need[i] = maps[i + 1].hi(need[i + 1] - 1) + 1
    counts = [tuple([0] * n)]
    while counts[-1] != tuple(need):
        new = list(counts[-1])
        for i in range(n):  # first to last: a layer reads rows its producer wrote this step too
            y = new[i]
            if y < need[i] and (i == 0 or maps[i].hi(y) < new[i - 1]):
                new[i] = y + 1
        if tuple(new) == counts[-1]:
            raise AssertionError(f"chain {chain}: no progress at step {len(counts) - 1}")
        counts.append(tuple(new))
    rings = []
    for i in range(n - 1):  # alive while layer i writes in step t: from the first row its consumer still needs
        alive = [b[i] - (maps[i + 1].lo(a[i + 1]) if a[i + 1] < need[i + 1] else a[i])
                 for a, b in zip(counts, counts[1:])]
        rings.append(min(max(alive + [1]), maps[i].out_h))
    result = Stream(tuple(chain), tuple(counts), tuple(rings))
    _replay(result, maps)
    return result


def _replay(s: Stream, maps: list[RowMap]) -> None:
    """Run the steps on row tags: every row read must be the one in its ring slot (AssertionError if not)."""
    slots = [[-1] * r for r in s.rings]
    for before, after in zip(s.counts, s.counts[1:]):
        for i in range(len(maps)):
            for y in range(before[i], after[i]):
                if i:
                    for r in range(maps[i].lo(y), maps[i].hi(y) + 1):
                        if slots[i - 1][r % s.rings[i - 1]] != r:
                            raise AssertionError(f"layer {s.layers[i]} row {y}: input row {r} overwritten")
                if i < len(s.rings):
                    slots[i][y % s.rings[i]] = y


@dataclass(frozen=True)
class Buffer:
    name: str  # a tensor (whole or ring) or "<layer>:sum"
    kind: str  # "tensor", "ring" or "sum"
    size: int  # bytes
    first: int  # stage
    last: int


@dataclass(frozen=True)
class Schedule:
    mode: str  # the mode asked for
    streamed: bool  # True if any chain is streamed
    stages: tuple[tuple[int, ...], ...]  # layer indices per stage
    streams: dict[int, Stream]  # stage -> its stream (streamed stages only)
    buffers: tuple[Buffer, ...]
    offsets: dict[str, int]
    arena_size: int
    layer_arena_size: int  # the whole-tensor (layer-by-layer) arena, for comparison
    extra_macs: int = 0  # recomputed MACs (none: pure row streaming)
    locations: dict[str, Location] = field(default_factory=dict)  # tensor or buffer -> where its bytes are
    reuse_input: bool = False
    in_input: frozenset[str] = frozenset()  # buffers placed in the caller's input buffer (--reuse-input)
    #: rings placed row by row (sepgen.rowplace): tensor -> arena offset of each row (-1: never computed);
    #: such a tensor's location is the arena's start.  Empty: every ring is a fixed block of `rows` slots.
    row_offsets: dict[str, tuple[int, ...]] = field(default_factory=dict)
    stage_bytes: tuple[int, ...] = ()  # live arena bytes of each stage at its busiest moment (4-byte aligned)
    #: stages placed row by row: every block of arena bytes with its moments (sepgen.rowplace), and the busiest moment
    stage_blocks: dict[int, tuple[tuple[Block, ...], int]] = field(default_factory=dict)

    def live(self, stage: int) -> list[Buffer]:
        return [b for b in self.buffers if b.first <= stage <= b.last]

    def peak(self) -> tuple[int, int]:
        """(largest live arena bytes of a stage, the first stage where it occurs); input-buffer tenants excluded."""
        best = max(self.stage_bytes, default=0)
        return best, (self.stage_bytes.index(best) if self.stage_bytes else 0)


def _build(graph: Graph, mode: str, streamed_chains: list[list[int]], layer_arena: int,
           reuse_input: bool = False, memo: dict | None = None) -> Schedule:
    """The schedule streaming ``streamed_chains``: rings as fixed blocks of slots, or placed row by row
    (:mod:`sepgen.rowplace`), whichever needs the smaller arena (fixed rings on a tie).  ``memo``: step
    tables and row placements already computed for this graph (the search of ``auto`` rebuilds often)."""
    memo = {} if memo is None else memo
    rings = _placed(graph, mode, streamed_chains, layer_arena, reuse_input, False, memo)
    if not rings.streamed:
        return rings
    rows = _placed(graph, mode, streamed_chains, layer_arena, reuse_input, True, memo)
    return rows if rows.arena_size < rings.arena_size else rings


def _placed(graph: Graph, mode: str, streamed_chains: list[list[int]], layer_arena: int, reuse_input: bool,
            by_rows: bool, memo: dict) -> Schedule:
    root = storage_roots(graph)
    out_root = root[graph.output]
    in_chain = {i: c for c in streamed_chains for i in c}
    stages: list[tuple[int, ...]] = []
    streams: dict[int, Stream] = {}
    for index, _ in graph.computed_layers():
        chain = in_chain.get(index)
        if chain is None:
            stages.append((index,))
        elif index == chain[0]:
            key = ("stream", tuple(chain))
            if key not in memo:
                memo[key] = stream(graph, chain)
            streams[len(stages)] = memo[key]
            stages.append(tuple(chain))
    stage_of = {i: s for s, layers in enumerate(stages) for i in layers}
    for index, layer in enumerate(graph.layers):  # aliasing layers: the stage of their input's producer
        stage_of.setdefault(index, stage_of.get(index - 1, 0))
    buffers: dict[str, Buffer] = {}
    rings = {graph.layers[i].output: (s, st.rings[k]) for s, st in streams.items()
             for k, i in enumerate(st.layers[:-1])}
    for s, st in streams.items():
        for k, i in enumerate(st.layers):
            layer = graph.layers[i]
            if k < len(st.rings):
                shape = graph.tensors[layer.output].shape
                size = st.rings[k] * shape[1] * shape[2]
                buffers[layer.output] = Buffer(layer.output, "ring", size, s, s)
            if is_reducer(layer):
                buffers[f"{layer.name}:sum"] = Buffer(f"{layer.name}:sum", "sum", 4 * layer.input_shape[2], s, s)
    for index, layer in enumerate(graph.layers):
        for name in (layer.output, *layer.inputs):
            owner = root[name]
            if owner in (graph.input, out_root) or owner in rings:
                continue
            s = stage_of[index]
            old = buffers.get(owner)
            first = old.first if old else s
            buffers[owner] = Buffer(owner, "tensor", graph.tensors[owner].size, first, max(s, old.last if old else s))
    sizes = {b.name: b.size for b in buffers.values()}
    lifetimes = {b.name: (b.first, b.last) for b in buffers.values()}
    by_row = {n for n in rings} if by_rows else set()
    in_input: dict[str, int] = {}
    if reuse_input:
        candidates = {n: b for n, b in buffers.items() if n not in by_row}
        in_input = _input_region(graph, root, stages, streams, stage_of, candidates)
    arena_names = [n for n in sizes if n not in in_input and n not in by_row]
    offsets, arena = place({n: sizes[n] for n in arena_names}, {n: lifetimes[n] for n in arena_names})
    live = [[b for b in buffers.values() if b.first <= s <= b.last] for s in range(len(stages))]
    stage_bytes = [sum(_align(b.size) for b in bs if b.name not in in_input) for bs in live]
    row_offsets: dict[str, tuple[int, ...]] = {}
    stage_blocks: dict[int, tuple[tuple[Block, ...], int]] = {}
    if by_rows:
        for s, st in streams.items():
            around = tuple(sorted((b.name, b.kind, b.size, offsets[b.name], b.first == s, b.last == s)
                                  for b in live[s] if b.name in offsets))
            key = ("rows", st.layers, around)
            if key not in memo:
                maps = [row_map(graph.layers[i]) for i in st.layers]
                memo[key] = stage_rows(graph, s, st, maps, live[s], offsets, root,
                                       is_reducer(graph.layers[st.layers[-1]]))
            placed, blocks = memo[key]
            row_offsets.update(placed)
            stage_bytes[s], busiest = peak_bytes(blocks)
            stage_blocks[s] = (tuple(blocks), busiest)
            arena = max([arena] + [b.offset + _align(b.size) for b in blocks])
        offsets.update({n: min(o for o in rows if o >= 0) for n, rows in row_offsets.items()})
    locations = {}
    for name in graph.tensors:
        owner = root[name]
        locations[name] = (Location("input") if owner == graph.input else Location("output") if owner == out_root
                           else Location("input", in_input[owner]) if owner in in_input
                           else Location("arena", 0) if owner in row_offsets else Location("arena", offsets[owner]))
    for b in buffers.values():
        locations.setdefault(b.name, Location("input", in_input[b.name]) if b.name in in_input
                             else Location("arena", offsets[b.name]))
    offsets = {**offsets, **in_input}
    return Schedule(mode, bool(streams), tuple(stages), streams, tuple(buffers.values()), offsets, arena,
                    layer_arena, 0, locations, reuse_input, frozenset(in_input), row_offsets, tuple(stage_bytes), stage_blocks)


def _input_region(graph: Graph, root: dict[str, str], stages, streams: dict[int, Stream], stage_of: dict[int, int],
                  buffers: dict[str, Buffer]) -> dict[str, int]:
    """--reuse-input: buffers placed in the caller's input buffer, {name: offset}.  Once no stage reads the
    input any more, any int8 buffer that fits; before, only the whole output of a streamed stage that reads the
    input itself, at offset 0, if every output row lands on input rows already read for good (replayed)."""
    capacity = graph.tensors[graph.input].size
    readers = [stage_of[i] for i, layer in enumerate(graph.layers) if any(root[t] == graph.input for t in layer.inputs)]
    input_last = max(readers, default=-1)
    pinned = {}
    for s, st in streams.items():
        first, last = graph.layers[st.layers[0]], graph.layers[st.layers[-1]]
        out = buffers.get(root[last.output])
        if root[first.inputs[0]] == graph.input and out is not None and out.first == s and _overlays(graph, st):
            pinned[out.name] = 0
    # int32 sums stay in the (aligned) arena: the caller's int8 input buffer has no alignment promise
    eligible = {n: b for n, b in buffers.items() if (b.first > input_last and b.kind != "sum") or n in pinned}
    offsets, _ = place({n: b.size for n, b in eligible.items()}, {n: (b.first, b.last) for n, b in eligible.items()},
                       capacity, pinned)
    return offsets


def _overlays(graph: Graph, st: Stream) -> bool:
    """True if the stage's last layer may write its output rows from offset 0 of the input it streams from."""
    first, last = graph.layers[st.layers[0]], graph.layers[st.layers[-1]]
    if len(last.output_shape) != 3 or graph.tensors[last.output].size > graph.tensors[graph.input].size:
        return False
    in_row, out_row = int(np.prod(first.input_shape[1:])), int(np.prod(last.output_shape[1:]))
    m0, need0 = row_map(first), st.counts[-1][0]
    for before, after in zip(st.counts, st.counts[1:]):
        dead = m0.lo(after[0]) * in_row if after[0] < need0 else graph.tensors[graph.input].size
        if after[-1] > before[-1] and after[-1] * out_row > dead:
            return False
    return True


def schedule(graph: Graph, mode: str = "layer", reuse_input: bool = False) -> Schedule:
    """The schedule of ``mode`` (``layer``, ``stream`` or ``auto``; see the module docstring).  With
    ``reuse_input`` the caller's input buffer also holds buffers once it is dead (see :func:`_input_region`)."""
    if mode not in MODES:
        raise ValueError(f"unknown schedule '{mode}' (choose from {', '.join(MODES)})")
    layer_arena = plan(graph).arena_size
    memo: dict = {}

    def build(segments: list[list[int]]) -> Schedule:
        return _build(graph, mode, segments, layer_arena, reuse_input, memo)

    if mode == "layer":
        return build([])
    segments = chains(graph)
    best = build(segments)
    if mode == "stream":
        return best
    while True:  # auto: local search over cuts; every move splits a streamed run or leaves it whole
        moves = []
        for k, seg in enumerate(segments):
            rest = segments[:k] + segments[k + 1:]
            moves.append(rest)
            moves += [rest + [part for part in (seg[:p], seg[p:]) if len(part) > 1] for p in range(1, len(seg))]
        trials = [(build(sorted(m)), sorted(m)) for m in moves]
        trial, chosen = min(trials, key=lambda t: (t[0].arena_size, sum(len(c) for c in t[1])), default=(best, []))
        if trial.arena_size >= best.arena_size:
            break
        best, segments = trial, chosen
    whole = build([])
    return best if best.arena_size < whole.arena_size else whole
