"""Row-by-row placement of a streamed stage (:mod:`sepgen.schedule`): every row of a chain-internal tensor
gets its own place in the arena when it is written, instead of a slot of a fixed ring.

Time inside a stage is counted in *moments*: moment ``t * n + k`` is layer ``k`` (of the chain's ``n``)
running in step ``t``.  Row ``y`` of layer ``k``'s output is live from the moment it is written to the last
moment a row of layer ``k + 1`` reads it (both ends included: a kernel's output never overlaps the rows
it reads).  Around the rows, the stage's whole buffers are fixed blocks: a buffer alive across the stage
for all its moments; the whole output tensor of the stage's last layer row by row from the moment each
row is written (its rows not yet written are free bytes); the whole input tensor of the stage's first
layer, when no later stage reads it, row by row until the moment its last reader runs (dead rows are free
bytes).  Rows are placed first fit (each at the lowest 4-byte aligned offset where no block live at a
common moment overlaps it), as :func:`sepgen.plan.place` places whole tensors, taken in a few orders
(:data:`ORDERS`); the smallest placement wins.  Integer bytes; moments ints.
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import ALIGNMENT

ALWAYS = 1 << 40  # a moment after every moment of a stage


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


@dataclass(frozen=True)
class Block:
    """Bytes [offset, offset + size) of the arena, live from moment ``start`` to ``end`` (both included)."""

    offset: int
    size: int
    start: int
    end: int
    owner: str = ""  # the buffer (tensor or "<layer>:sum") the bytes belong to


def row_moments(counts: tuple[tuple[int, ...], ...], maps: list) -> tuple[list[dict[int, int]], list[dict[int, int]]]:
    """(written, last_read): per chain layer k, {row y of its output: moment}; last_read[k][y] is the last
    moment layer k + 1 reads row y (the write moment if nothing reads it; the last layer: absent)."""
    n = len(maps)
    written: list[dict[int, int]] = [{} for _ in range(n)]
    for t, (before, after) in enumerate(zip(counts, counts[1:])):
        for k in range(n):
            for y in range(before[k], after[k]):
                written[k][y] = t * n + k
    last: list[dict[int, int]] = [dict(w) for w in written[:-1]]
    for k in range(1, n):
        for y, moment in written[k].items():
            for r in range(maps[k].lo(y), maps[k].hi(y) + 1):
                last[k - 1][r] = max(last[k - 1][r], moment)
    return written, last


def input_last_reads(counts: tuple[tuple[int, ...], ...], first_map, in_h: int) -> list[int]:
    """The last moment the chain's first layer reads each row of its input (-1: never)."""
    n = len(counts[0])
    last = [-1] * in_h
    for t, (before, after) in enumerate(zip(counts, counts[1:])):
        for y in range(before[0], after[0]):
            for r in range(first_map.lo(y), first_map.hi(y) + 1):
                last[r] = t * n
    return last


#: orders in which first fit takes the rows ((key, bytes, start, end) each): by first moment; longest lived
#: first; most bytes x moments first.  None is best everywhere; place_rows keeps the smallest result.
ORDERS = (lambda r: (r[2], r[0]), lambda r: (r[2] - r[3], r[2], r[0]), lambda r: (-r[1] * (r[3] - r[2] + 1), r[2], r[0]))


def place_rows(rows: list[tuple[tuple[int, int], int, int, int]], fixed: list[Block]) -> dict[tuple[int, int], int]:
    """First-fit placement of ``rows`` ((key, bytes, start, end) each) around the ``fixed`` blocks; returns
    {key: offset}: the placement with the lowest end of the :data:`ORDERS` (the first on a tie)."""
    best: tuple[int, dict[tuple[int, int], int]] | None = None
    for order in ORDERS:
        offsets = _first_fit(sorted(rows, key=order), fixed)
        end = max((offsets[key] + _align(size) for key, size, _, _ in rows), default=0)
        if best is None or end < best[0]:
            best = (end, offsets)
    return best[1] if best else {}


def _first_fit(rows: list[tuple[tuple[int, int], int, int, int]], fixed: list[Block]) -> dict[tuple[int, int], int]:
    """Each row in turn at the lowest aligned offset where no block live at a common moment overlaps it."""
    offsets: dict[tuple[int, int], int] = {}
    placed: list[Block] = []
    for key, size, start, end in rows:
        busy = sorted((b.offset, b.size) for b in placed + fixed if not (b.end < start or b.start > end))
        offset, size = 0, _align(size)
        for o, s in busy:
            if offset + size <= o:
                break
            offset = max(offset, o + _align(s))
        placed.append(Block(offset, size, start, end))
        offsets[key] = offset
    return offsets


def peak_bytes(blocks: list[Block]) -> tuple[int, int]:
    """(the largest sum of (aligned) bytes live at one moment, the first such moment)."""
    events = sorted([(b.start, _align(b.size)) for b in blocks] + [(b.end + 1, -_align(b.size)) for b in blocks])
    best, when, live = 0, 0, 0
    for moment, delta in events:
        live += delta
        if live > best:
            best, when = live, moment
    return best, when


def check_disjoint(blocks: list[Block]) -> None:
    """AssertionError if two blocks live at a common moment share a byte."""
    order = sorted(blocks, key=lambda b: (b.start, b.offset))
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if b.start > a.end:
                break
            if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                raise AssertionError(f"rows overlap: {a} and {b}")


def stage_rows(graph, stage: int, st, maps: list, live: list, offsets: dict[str, int], root: dict[str, str],
               reduces: bool) -> tuple[dict[str, tuple[int, ...]], list[Block]]:
    """Row placement of streamed stage ``stage`` (its :class:`~sepgen.schedule.Stream` ``st``, row maps
    ``maps``) around the arena buffers ``live`` in it (placed at ``offsets``).  ``reduces``: the chain ends
    in a global reduction (its output has no rows).  Returns ({tensor: arena offset of each of its rows, -1
    for rows never computed}, every block of the stage: fixed buffers and rows)."""
    n = len(st.layers)
    first, last = graph.layers[st.layers[0]], graph.layers[st.layers[-1]]
    written, last_read = row_moments(st.counts, maps)
    fixed: list[Block] = []
    for b in live:
        if b.name not in offsets or b.kind == "ring":
            continue
        base = offsets[b.name]
        if b.kind == "tensor" and b.name == root[last.output] and not reduces and b.first == stage:
            row = last.output_shape[1] * last.output_shape[2]
            fixed += [Block(base + y * row, row, m, ALWAYS, b.name) for y, m in written[-1].items()]
        elif b.kind == "tensor" and b.name == root[first.inputs[0]] and b.last == stage:
            row = first.input_shape[1] * first.input_shape[2]
            fixed += [Block(base + r * row, row, -1, m, b.name)
                      for r, m in enumerate(input_last_reads(st.counts, maps[0], first.input_shape[0])) if m >= 0]
        else:
            fixed.append(Block(base, b.size, -1, ALWAYS, b.name))
    rows = []
    for k in range(n - 1):
        shape = graph.layers[st.layers[k]].output_shape
        rows += [((k, y), shape[1] * shape[2], m, last_read[k][y]) for y, m in written[k].items()]
    placed = place_rows(rows, fixed)
    names = [graph.layers[i].output for i in st.layers]
    blocks = fixed + [Block(placed[key], size, start, end, names[key[0]]) for key, size, start, end in rows]
    check_disjoint(blocks)
    result = {graph.layers[i].output: tuple(placed.get((k, y), -1) for y in range(graph.layers[i].output_shape[0]))
              for k, i in enumerate(st.layers[:-1])}
    return result, blocks
