"""Row-streaming schedules (sepgen.schedule): the step tables are valid, the arena is the plan's, and the
generated C of both schedules equals the simulator byte for byte on a grid of separable chains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from arena_tags import replay_tags
from util import quantized, rand

from sepgen import codegen, schedule as sched, verification, zoo
from sepgen.frontends.builder import GraphBuilder

#: (input shape, first depthwise: kernel, stride, padding, depth multiplier, dilation, second depthwise
#: kernel and stride, the end of the chain: "mean", "avg" (avg_pool2d over the whole input) or "none")
CHAINS = [
    ((9, 7, 3), (3, 3), 1, "same", 1, 1, (3, 3), 2, "mean"),
    ((11, 6, 2), (3, 3), 2, "valid", 2, 1, (3, 3), 1, "none"),
    ((10, 5, 3), (3, 3), 1, "same", 1, 2, (3, 1), 1, "avg"),
    ((13, 4, 2), (5, 1), 1, "valid", 2, 1, (1, 3), 2, "mean"),
    ((12, 8, 2), (3, 3), 2, "same", 1, 1, (5, 5), 1, "avg"),
    ((7, 7, 1), (1, 5), 1, "same", 3, 1, (3, 3), 2, "none"),
    ((12, 10, 3), (3, 3), 1, "same", 1, 1, (3, 3), 1, "mean", "max"),
    ((11, 9, 2), (3, 3), 1, "same", 2, 1, (3, 3), 1, "none", "avg"),
]


def chain_graph(shape, k1, s1, pad1, dm, dil, k2, s2, end, mid="none", seed=0):
    """stem 3x3 conv -> dw(k1) -> pw -> [max pool 2x2 | avg pool 3x3 stride 2 'same'] -> dw(k2) -> pw
    -> [mean | avg_pool2d | nothing]."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(shape)
    c = shape[2]
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, c, 4), rand(rng, 4), 1, 1, "same", "relu")
    y = b.depthwise_conv2d("dw1", y, rand(rng, *k1, 4, dm), rand(rng, 4 * dm), s1, dil, pad1, "relu")
    y = b.conv2d("pw1", y, rand(rng, 1, 1, 4 * dm, 6), rand(rng, 6), activation="relu")
    if mid == "max":
        y = b.max_pool2d("pool1", y, 2)
    elif mid == "avg":
        y = b.avg_pool2d("pool1", y, 3, 2, "same")
    y = b.depthwise_conv2d("dw2", y, rand(rng, *k2, 6, 1), None, s2, 1, "same", "relu6")
    y = b.conv2d("pw2", y, rand(rng, 1, 1, 6, 5), rand(rng, 5))
    if end == "mean":
        y = b.global_avg_pool2d("gap", y)
    elif end == "avg":
        h, w = b.shape(y)[:2]
        y = b.avg_pool2d("pool", y, (h, w))
    return b.build(y)


@pytest.mark.parametrize("case", CHAINS, ids=[f"chain{i}" for i in range(len(CHAINS))])
@pytest.mark.parametrize("mode", ["layer", "stream"])
def test_chain_bit_exact_on_host(case, mode):
    graph, inputs = quantized(chain_graph(*case), np.random.default_rng(1))
    s = sched.schedule(graph, mode)
    assert s.streamed == (mode == "stream")
    if mode == "stream":
        (st,) = s.streams.values()
        assert list(st.layers) == [i for i, _ in graph.computed_layers()]  # the whole model is one chain
        assert s.arena_size < s.layer_arena_size
    for sanitize in (False, True):  # ASan catches a ring row written or read out of its buffer
        result = verification.verify_host(graph, inputs, sanitize=sanitize, schedule=mode)
        assert result.ok, f"{mode}: {result.mismatch}"


def test_arena_size_is_the_schedule_peak():
    graph, _ = quantized(chain_graph(*CHAINS[0]), np.random.default_rng(1))
    s = sched.schedule(graph, "stream")
    header = codegen.render(graph, "m", schedule="stream")["m.h"]
    assert f"#define M_ARENA_SIZE {s.arena_size}\n" in header
    peak, _ = s.peak()
    assert peak <= s.arena_size  # the placement cannot use less than the live bytes of its busiest stage
    assert replay_tags(graph, s) > 0  # every byte read still holds what was written there
    offsets = {b.name: (s.offsets[b.name], b) for b in s.buffers if b.name not in s.row_offsets}
    for name, (offset, b) in offsets.items():  # buffers alive in the same stage never overlap (rows: replay_tags)
        assert offset + b.size <= s.arena_size
        for other, (o2, b2) in offsets.items():
            if other != name and not (b.last < b2.first or b2.last < b.first):
                assert offset + b.size <= o2 or o2 + b2.size <= offset, (name, other)


def test_replay_rejects_a_ring_one_row_too_small():
    graph = zoo.ds_cnn_kws()
    st = sched.stream(graph, sched.chains(graph)[0])
    assert st.rings[0] == 3  # the 3x3 'same' depthwise after the stem reads three rows
    maps = [sched.row_map(graph.layers[i]) for i in st.layers]
    sched._replay(st, maps)
    small = dataclasses.replace(st, rings=(2,) + st.rings[1:])
    with pytest.raises(AssertionError, match="overwritten"):
        sched._replay(small, maps)


def test_kws_arena_reached():
    """DS-CNN KWS 49x10: the arena under --schedule auto (deterministic: shapes only)."""
    graph = zoo.ds_cnn_kws()
    s = sched.schedule(graph, "auto")
    io = graph.tensors[graph.input].size + graph.tensors[graph.output].size
    assert s.layer_arena_size == 16_000
    assert s.arena_size <= 3_520  # rows placed one by one (fixed rings: 5,760)
    assert s.arena_size + io <= 7_000
    assert s.extra_macs == 0
    assert [st.rings for st in s.streams.values()] == [(3, 1, 3, 1, 3, 1, 3, 1, 1)]


def test_auto_keeps_layer_schedule_where_streaming_does_not_pay():
    b = GraphBuilder((4, 4, 2))
    rng = np.random.default_rng(0)
    y = b.dense("fc", b.flatten("flat", b.input), rand(rng, 32, 3), rand(rng, 3))
    graph = b.build(y)
    assert sched.chains(graph) == []
    assert not sched.schedule(graph, "auto").streamed


def test_kws_stream_bit_exact_on_host():
    rng = np.random.default_rng(2024)
    graph, inputs = quantized(zoo.ds_cnn_kws(), rng)
    result = verification.verify_host(graph, inputs[::4], prefix="kws", schedule="auto")
    assert result.ok, result.mismatch
    assert result.layers == 3  # the chain's last layer (the pool), fc and the output buffer's producer
    assert result.streamed == len(graph.computed_layers()) - 3 and "traced layers (+" in result.summary()


def test_a_wrong_streamed_byte_is_reported_at_the_chain_end():
    graph, inputs = quantized(chain_graph(*CHAINS[0]), np.random.default_rng(1))
    files = codegen.render(graph, "model", "portable", schedule="stream")
    broken = files["model.c"].replace("acc += filter_val * (input_val + input_offset);",
                                      "acc += filter_val * (input_val + input_offset) + 1;", 1)
    assert broken != files["model.c"]
    result = verification.verify_host(graph, inputs, files={**files, "model.c": broken}, schedule="stream")
    assert not result.ok
    assert result.mismatch.layer == "gap"
    assert "dw1" in str(result.mismatch) and "not traced" in str(result.mismatch)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        sched.schedule(zoo.ds_cnn_kws(), "rows")


def test_auto_cuts_a_long_chain_where_rings_add_up():
    """VGG separable: one chain from the first conv through the max pools to the last; auto cuts it."""
    graph = zoo.vgg_cifar10(True)
    auto, stream = sched.schedule(graph, "auto"), sched.schedule(graph, "stream")
    assert auto.arena_size <= stream.arena_size < auto.layer_arena_size
    for st in auto.streams.values():  # every streamed run is a piece of one chain
        assert any(set(st.layers) <= set(chain) for chain in sched.chains(graph))


def mobilenet_like(seed=0):
    """MobileNetV1-shaped: 3x3 stride-2 stem, separable blocks (stride 2 and 1), global average pool, dense."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder((20, 20, 3))
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 4), None, 2, 1, "same", "relu6")
    c = 4
    for i, (stride, out) in enumerate([(1, 8), (2, 8), (1, 16), (2, 16)]):
        y = b.depthwise_conv2d(f"dw{i}", y, rand(rng, 3, 3, c, 1), None, stride, 1, "same", "relu6")
        y = b.conv2d(f"pw{i}", y, rand(rng, 1, 1, c, out), rand(rng, out), activation="relu6")
        c = out
    y = b.dense("fc", b.global_avg_pool2d("gap", y), rand(rng, c, 3), rand(rng, 3), "softmax")
    return b.build(y)


@pytest.mark.parametrize("mode", ["layer", "stream", "auto"])
def test_reuse_input_bit_exact_and_said_in_the_header(mode):
    graph, inputs = quantized(mobilenet_like(), np.random.default_rng(3))
    plain, reused = sched.schedule(graph, mode), sched.schedule(graph, mode, reuse_input=True)
    assert reused.arena_size <= plain.arena_size
    assert reused.in_input  # something moved into the dead input buffer
    files = codegen.render(graph, "m", schedule=mode, reuse_input=True)
    assert "CLOBBERS its input buffer" in files["m.h"] and "int m_invoke(int8_t *input" in files["m.h"]
    assert codegen.schedule_of(files, "m") == (mode, True)
    for sanitize in (False, True):
        result = verification.verify_host(graph, inputs, "m", sanitize=sanitize, files=files)
        assert result.ok, f"{mode} --reuse-input: {result.mismatch}"


def test_reuse_input_overlay_needs_dead_rows():
    """A streamed stage may write its output over the input it reads only where those rows are read for good:
    a stride-1 chain keeping the resolution and doubling the channels may not."""
    rng = np.random.default_rng(0)
    b = GraphBuilder((8, 6, 2))
    y = b.depthwise_conv2d("dw", b.input, rand(rng, 3, 3, 2, 1), None, 1, 1, "same")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 2, 4), None)
    graph = b.build(b.dense("fc", b.flatten("flat", y), rand(rng, 8 * 6 * 4, 2), None))
    st = sched.stream(graph, sched.chains(graph)[0])
    assert not sched._overlays(graph, st)
    small = mobilenet_like()
    assert sched._overlays(small, sched.stream(small, sched.chains(small)[0][:2]))


def random_chain(rng: np.random.Generator):
    """A random streamable stack: convs, depthwise (dm 1-2, dilation), pools, strides and paddings, k x 1."""
    h, w, c = int(rng.integers(5, 14)), int(rng.integers(3, 9)), int(rng.integers(1, 4))
    b = GraphBuilder((h, w, c))
    y = b.input
    for n in range(int(rng.integers(2, 7))):
        h, w, c = b.shape(y)
        kind = rng.choice(["conv", "dw", "pw", "pool"])
        kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
        stride = int(rng.choice([1, 2])) if min(h, w) > 2 else 1
        dilation = 2 if stride == 1 and kh == kw == 2 and min(h, w) > 4 and rng.random() < 0.5 else 1
        padding = str(rng.choice(["same", "valid"]))
        if kind == "conv":
            y = b.conv2d(f"c{n}", y, rand(rng, kh, kw, c, 3), rand(rng, 3), stride, dilation, padding, "relu")
        elif kind == "dw":
            dm = int(rng.choice([1, 2]))
            y = b.depthwise_conv2d(f"d{n}", y, rand(rng, kh, kw, c, dm), None, stride, dilation, padding, "relu6")
        elif kind == "pw":
            y = b.conv2d(f"p{n}", y, rand(rng, 1, 1, c, 4), rand(rng, 4))
        else:
            y = b.max_pool2d(f"m{n}", y, (kh, kw), (stride, stride), padding)
    if rng.random() < 0.5:
        y = b.global_avg_pool2d("gap", y)
    return b.build(y)


def test_random_chains_replay_and_ring_bounds():
    """stream() replays every step table on row tags (AssertionError on an overwritten row); rings hold at
    least one row and never more than the tensor; the last layer produces all its rows."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        graph = random_chain(rng)
        for chain in sched.chains(graph):
            st = sched.stream(graph, chain)
            for i, rows in zip(chain, st.rings):
                assert 1 <= rows <= graph.layers[i].output_shape[0]
            assert st.counts[-1][-1] == sched.row_map(graph.layers[chain[-1]]).out_h
        for mode, reuse in (("stream", False), ("auto", False), ("auto", True)):
            assert replay_tags(graph, sched.schedule(graph, mode, reuse)) > 0


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_random_chains_bit_exact_on_host(seed):
    graph, inputs = quantized(random_chain(np.random.default_rng(seed)), np.random.default_rng(seed))
    assert sched.schedule(graph, "stream").streamed
    result = verification.verify_host(graph, inputs, sanitize=True, schedule="stream")
    assert result.ok, result.mismatch


def test_mobilenet_v1_025_ram_target():
    """MobileNetV1-0.25 96x96: --schedule auto needs <= 40,000 B of RAM (arena + input + output) without
    --reuse-input: rows of the streamed chains are placed one by one (deterministic: shapes only)."""
    graph = zoo.mobilenet_v1_025()
    s = sched.schedule(graph, "auto")
    io = graph.tensors[graph.input].size + graph.tensors[graph.output].size
    assert io == 27_650 and s.layer_arena_size == 55_296
    assert s.arena_size + io <= 40_000
    assert s.arena_size <= 10_368  # pinned: 38,018 B in all
    assert s.row_offsets and s.extra_macs == 0
    assert s.peak()[0] <= s.arena_size
    assert replay_tags(graph, s) > 0
    assert replay_tags(graph, sched.schedule(graph, "stream")) > 0  # the whole model as one streamed chain
    # the first run's whole output (dw4, 12x12x32) lends its rows not yet written to the first run's rows and
    # its rows read for the last time to the second run's rows
    (cut,) = [b for b in s.buffers if b.kind == "tensor" and b.first == 0 and b.last == 1]
    inside = {name for name, rows in s.row_offsets.items()
              if any(s.offsets[cut.name] <= r < s.offsets[cut.name] + cut.size for r in rows)}
    runs = [{graph.layers[i].output for i in st.layers} for st in s.streams.values()]
    assert inside & runs[0] and inside & runs[1]


def test_row_placement_beats_fixed_rings_and_falls_back_to_them():
    """Rows placed one by one never need more than fixed rings: _build keeps the smaller (rings on a tie)."""
    graph = zoo.ds_cnn_kws()
    chain = sched.chains(graph)
    fixed = sched._placed(graph, "stream", chain, 0, False, False, {})
    rows = sched._placed(graph, "stream", chain, 0, False, True, {})
    assert not fixed.row_offsets and rows.row_offsets
    assert rows.arena_size < fixed.arena_size == 5_760
    assert sched._build(graph, "stream", chain, 0).arena_size == rows.arena_size
    for s in (fixed, rows):
        assert replay_tags(graph, s) > 0
    # a wrong row offset is caught by the replay (two live rows sharing bytes)
    name = next(iter(rows.row_offsets))
    moved = list(rows.row_offsets[name])
    moved[5] = moved[4]
    broken = dataclasses.replace(rows, row_offsets={**rows.row_offsets, name: tuple(moved)})
    with pytest.raises(AssertionError, match="overwritten"):
        replay_tags(graph, broken)


def test_mobilenet_v1_025_auto_bit_exact_on_host():
    rng = np.random.default_rng(96)
    graph, inputs = quantized(zoo.mobilenet_v1_025(), rng)
    files = codegen.render(graph, "mn", schedule="auto")
    assert "static const uint16_t mn_layer0_rows[48]" in files["mn.c"]  # the stem's rows placed one by one
    for sanitize in (False, True):
        result = verification.verify_host(graph, inputs[::8], "mn", sanitize=sanitize, files=files)
        assert result.ok, result.mismatch


def test_report_explains_rows_placed_one_by_one():
    """The memory plan of a chain placed row by row: what is live at its busiest row step adds up to the step's
    bytes, rings say how many rows are live then, the text names the busiest row step."""
    from sepgen import memory_report

    graph = zoo.ds_cnn_kws()
    s = sched.schedule(graph, "auto")
    m = memory_report.memory_plan(graph, "auto")
    assert m["arena_bytes"] == s.arena_size == 3_520 and m["peak_bytes"] == s.peak()[0] <= s.arena_size
    step = m["steps"][0]
    assert step["streamed"] and step["busiest"]["layer"] in step["layers"]
    assert 0 <= step["busiest"]["row_step"] < step["row_steps"]
    assert sum((b["bytes"] + 3) // 4 * 4 for b in step["live"] if b["where"] == "arena") == step["arena_bytes"]
    rings = [b for b in step["live"] if b["kind"] == "ring"]
    assert rings and all(b["placement"] == "rows" and b["bytes"] == b["rows"] * 320 for b in rings)  # 5 x 64 rows
    text = memory_report.to_text(m, "kws")
    assert "rows placed one by one" in text and f"busiest: row step {step['busiest']['row_step']}" in text
