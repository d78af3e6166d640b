"""Replays a schedule (sepgen.schedule) on byte tags: every byte a layer writes gets the tag (tensor, byte index
in the whole tensor) in the buffer the plan puts it in (arena, input or output), and every byte a layer reads
must still carry the tag of the value it reads.  Independent of how the plan was made: it catches two live
rows or tensors sharing bytes, a ring slot reused too early, a row table pointing at the wrong bytes."""

from __future__ import annotations

import numpy as np

from sepgen import schedule as sched
from sepgen.plan import storage_roots


def replay_tags(graph, s: sched.Schedule) -> int:
    """Raises AssertionError at the first read of a clobbered byte; returns the number of bytes checked."""
    root = storage_roots(graph)
    ids = {name: k + 1 for k, name in enumerate(graph.tensors)}
    space = {"arena": np.zeros(max(s.arena_size, 1), np.int64), "input": np.zeros(graph.tensors[graph.input].size, np.int64),
             "output": np.zeros(graph.tensors[graph.output].size, np.int64)}
    rings = {b.name: b for b in s.buffers if b.kind == "ring"}
    ring_rows = {graph.layers[i].output: st.rings[k] for st in s.streams.values() for k, i in enumerate(st.layers[:-1])}
    checked = 0

    def row_bytes(tensor: str) -> int:
        shape = graph.tensors[tensor].shape
        return int(np.prod(shape[1:])) if len(shape) == 3 else graph.tensors[tensor].size

    def where(tensor: str, y: int | None) -> tuple[str, int, int, int]:
        """(buffer, offset, bytes, first byte index in the whole tensor) of row y (None: the whole tensor)."""
        owner = root[tensor]
        loc = s.locations[owner]
        if y is None:
            return loc.buffer, loc.offset, graph.tensors[owner].size, 0
        rb = row_bytes(owner)
        if owner in s.row_offsets:
            assert s.row_offsets[owner][y] >= 0, f"{owner} row {y} has no place"
            return "arena", s.row_offsets[owner][y], rb, y * rb
        if owner in rings:
            return loc.buffer, loc.offset + (y % ring_rows[owner]) * rb, rb, y * rb
        return loc.buffer, loc.offset + y * rb, rb, y * rb

    def write(tensor: str, y: int | None = None) -> None:
        buf, off, n, first = where(tensor, y)
        space[buf][off:off + n] = (ids[root[tensor]] << 32) + np.arange(first, first + n)

    def read(tensor: str, y: int | None = None) -> None:
        nonlocal checked
        buf, off, n, first = where(tensor, y)
        got = space[buf][off:off + n]
        want = (ids[root[tensor]] << 32) + np.arange(first, first + n)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"{tensor} row {y}: byte {first + bad[0]} at {buf}+{off + bad[0]} was overwritten"
        checked += n

    def tag(name: str, n: int) -> None:
        loc = s.locations[name]
        space[loc.buffer][loc.offset:loc.offset + n] = -np.arange(1, n + 1) - (ids.get(name, 0) << 32)

    def check(name: str, n: int) -> None:
        loc = s.locations[name]
        assert (space[loc.buffer][loc.offset:loc.offset + n] == -np.arange(1, n + 1) - (ids.get(name, 0) << 32)).all(), \
            f"{name} was overwritten"

    write(graph.input)
    for number, layers in enumerate(s.stages):
        st = s.streams.get(number)
        if st is None:
            layer = graph.layers[layers[0]]
            for t in layer.inputs:
                read(t)
            write(layer.output)
            continue
        maps = [sched.row_map(graph.layers[i]) for i in st.layers]
        for before, after in zip(st.counts, st.counts[1:]):
            for k, i in enumerate(st.layers):
                layer = graph.layers[i]
                for y in range(before[k], after[k]):
                    if sched.is_reducer(layer):  # its int32 sums live from the stage's first row to its last
                        sums = (f"{layer.name}:sum", 4 * layer.input_shape[2])
                        if y == 0:
                            tag(*sums)
                        else:
                            check(*sums)
                    for r in range(maps[k].lo(y), maps[k].hi(y) + 1):
                        read(layer.inputs[0], r)
                    if sched.is_reducer(layer):
                        if y == maps[k].out_h - 1:
                            write(layer.output)
                    else:
                        write(layer.output, y)
    read(graph.output)
    return checked
