"""Budgets (MACs, params, flash, RAM, standard-convolution equivalents) and their reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sepgen import report, zoo
from sepgen.budget import DEPTHWISE_SEPARABLE, SPATIALLY_SEPARABLE, budget
from sepgen.frontends.builder import GraphBuilder
from sepgen.plan import plan
from conftest import require_module
from util import quantized, rand

RNG = np.random.default_rng(1234)


def conv(shape, kh, kw, filters, padding="valid", bias=True):
    b = GraphBuilder(shape)
    c = shape[2]
    out = b.conv2d("conv", b.input, rand(RNG, kh, kw, c, filters), rand(RNG, filters) if bias else None,
                   padding=padding)
    return b.build(out)


def dw_pw(shape, k, filters, dw_bias=False, padding="valid", dm=1):
    """DepthwiseConv2D k x k then 1x1 Conv2D with bias (what SeparableConv2D becomes when dw_bias is False)."""
    b = GraphBuilder(shape)
    c = shape[2]
    x = b.depthwise_conv2d("dw", b.input, rand(RNG, k, k, c, dm), rand(RNG, c * dm) if dw_bias else None,
                           padding=padding)
    x = b.conv2d("pw", x, rand(RNG, 1, 1, c * dm, filters), rand(RNG, filters))
    return b.build(x)


def spatial_pair(shape, k, first="kx1", filters=1):
    b = GraphBuilder(shape)
    c = shape[2]
    k1 = (k, 1) if first == "kx1" else (1, k)
    x = b.conv2d("a", b.input, rand(RNG, *k1, c, filters), rand(RNG, filters))
    x = b.conv2d("b", x, rand(RNG, *k1[::-1], filters, filters), rand(RNG, filters))
    return b.build(x)


# ------------------------------------------------------------------ figures
def test_separable_15x15x3_10_filters():
    std = budget(conv((15, 15, 3), 3, 3, 10))
    assert std.totals.macs == std.totals.standard_macs == 45_630
    assert std.blocks == ()
    sep = budget(dw_pw((15, 15, 3), 3, 10))
    dw, pw = sep.layers
    assert (dw.macs, pw.macs) == (4_563, 5_070)
    assert (dw.standard_macs, pw.standard_macs) == (45_630, 0)  # block standard on the first row
    assert dw.block == pw.block == "sep1"
    assert sep.totals.macs == 9_633 and sep.totals.standard_macs == 45_630
    (blk,) = sep.blocks
    assert blk.kind == DEPTHWISE_SEPARABLE and blk.layers == ("dw", "pw")
    assert (blk.macs, blk.standard_macs) == (9_633, 45_630)
    assert blk.mac_saving == pytest.approx(45_630 / 9_633)
    assert (blk.kernel_size, blk.in_channels, blk.out_channels) == ((3, 3), 3, 10)


def test_separable_12x12x3_to_8x8x256():
    std = budget(conv((12, 12, 3), 5, 5, 256))
    assert std.layers[0].output_shape == (8, 8, 256)
    assert std.totals.macs == 1_228_800
    sep = budget(dw_pw((12, 12, 3), 5, 256))
    assert [r.macs for r in sep.layers] == [4_800, 49_152]
    assert sep.totals.macs == 53_952 and sep.totals.standard_macs == 1_228_800
    assert sep.blocks[0].standard_macs == 1_228_800


@pytest.mark.parametrize("first", ["kx1", "1xk"])
def test_spatially_separable_15x15(first):
    assert budget(conv((15, 15, 1), 3, 3, 1)).totals.macs == 1_521
    sep = budget(spatial_pair((15, 15, 1), 3, first))
    assert [r.macs for r in sep.layers] == [585, 507]
    assert [r.standard_macs for r in sep.layers] == [1_521, 0]
    assert sep.totals.macs == 1_092 and sep.totals.standard_macs == 1_521
    (blk,) = sep.blocks
    assert blk.kind == SPATIALLY_SEPARABLE and blk.kernel_size == (3, 3) and blk.layers == ("a", "b")
    assert sep.layers[0].block == sep.layers[1].block == blk.label


def test_spatially_separable_5x5_is_one_pair():
    assert budget(conv((5, 5, 1), 3, 3, 1)).totals.macs == 81
    sep = budget(spatial_pair((5, 5, 1), 3))
    assert [r.macs for r in sep.layers] == [45, 27]
    assert len(sep.blocks) == 1
    blk = sep.blocks[0]
    assert (blk.macs, blk.standard_macs) == (72, 81)
    assert blk.standard == "conv2d 3x3, 1 -> 1 channels"
    # standard params: 3x3 kernel + the second layer's bias
    assert blk.standard_params == 9 + 1 and blk.params == (3 + 1) + (3 + 1)


def test_params_conv_separable_and_depthwise_with_bias():
    std, sep, dwb = budget(conv((8, 8, 3), 3, 3, 64)), budget(dw_pw((8, 8, 3), 3, 64)), \
        budget(dw_pw((8, 8, 3), 3, 64, dw_bias=True))
    assert std.totals.params == std.totals.standard_params == 1_792
    assert sep.totals.params == 283 and sep.totals.standard_params == 1_792
    assert dwb.totals.params == 286 and [r.params for r in dwb.layers] == [30, 256]
    assert dwb.totals.standard_params == 1_792  # the standard conv carries the pointwise's bias only


def test_standalone_depthwise():
    b = GraphBuilder((10, 10, 4))
    x = b.depthwise_conv2d("dw", b.input, rand(RNG, 3, 3, 4, 2), rand(RNG, 8))
    g = b.build(x)  # the depthwise is the model output: not part of a block
    (row,) = budget(g).layers
    assert row.macs == 8 * 8 * 9 * 4 * 2 and row.params == 9 * 4 * 2 + 8
    assert row.standard_macs == 8 * 8 * 9 * 4 * 8 and row.standard_params == 9 * 4 * 8 + 8
    assert row.block is None
    nobias = GraphBuilder((10, 10, 4))
    g = nobias.build(nobias.depthwise_conv2d("dw", nobias.input, rand(RNG, 3, 3, 4, 1)))
    assert budget(g).layers[0].standard_params == 9 * 4 * 4


def test_depthwise_not_a_block_when_pointwise_strided_or_output_shared():
    b = GraphBuilder((9, 9, 4))
    x = b.depthwise_conv2d("dw", b.input, rand(RNG, 3, 3, 4, 1))
    x = b.conv2d("pw_s2", x, rand(RNG, 1, 1, 4, 6), strides=2)
    r = budget(b.build(x))
    assert r.blocks == () and r.layers[0].standard_macs == 7 * 7 * 9 * 4 * 4
    assert r.layers[1].standard_macs == r.layers[1].macs

    b = GraphBuilder((9, 9, 4))
    d = b.depthwise_conv2d("dw", b.input, rand(RNG, 3, 3, 4, 1))
    p = b.conv2d("pw", d, rand(RNG, 1, 1, 4, 4))
    x = b.add("add", [d, p])  # the depthwise output also feeds the Add
    r = budget(b.build(x))
    assert r.blocks == () and r.layer("dw").standard_macs == 7 * 7 * 9 * 4 * 4


def test_spatial_pair_needs_matching_k():
    b = GraphBuilder((9, 9, 2))
    x = b.conv2d("a", b.input, rand(RNG, 3, 1, 2, 2))
    x = b.conv2d("b", x, rand(RNG, 1, 5, 2, 2))
    r = budget(b.build(x))
    assert r.blocks == () and r.totals.standard_macs == r.totals.macs


def test_chain_of_spatial_pairs_pairs_greedily():
    b = GraphBuilder((9, 9, 1))
    x = b.input
    for i, k in enumerate([(3, 1), (1, 3), (3, 1), (1, 3)]):
        x = b.conv2d(f"c{i}", x, rand(RNG, *k, 1, 1))
    r = budget(b.build(x))
    assert [blk.layers for blk in r.blocks] == [("c0", "c1"), ("c2", "c3")]
    assert [row.block for row in r.layers] == ["sep1", "sep1", "sep2", "sep2"]


def test_vgg_cifar10_params_and_standard_equivalent():
    std, sep = budget(zoo.vgg_cifar10(separable=False)), budget(zoo.vgg_cifar10(separable=True))
    assert std.totals.params == std.totals.standard_params == 1_186_378
    assert sep.totals.params == 174_821
    assert sep.totals.standard_params == 1_186_378
    assert sep.totals.standard_macs == std.totals.macs
    assert len(sep.blocks) == 6 and std.blocks == ()
    assert [blk.standard_params for blk in sep.blocks] == [r.params for r in std.layers if r.op == "conv2d"]


def test_totals_rows_and_ram():
    g = zoo.vgg_cifar10(separable=True)
    r = budget(g)
    assert [row.name for row in r.layers] == [layer.name for layer in g.layers]  # Reshape rows kept
    flat = r.layer("flatten")
    assert flat.op == "reshape" and (flat.params, flat.macs, flat.standard_macs, flat.flash_bytes) == (0, 0, 0, 0)
    for field in ("params", "macs", "standard_params", "standard_macs", "flash_bytes"):
        assert getattr(r.totals, field) == sum(getattr(row, field) for row in r.layers)
    assert r.totals.flash_bytes == sum(layer.weight_bytes() for layer in g.layers)
    assert r.totals.ram_bytes == plan(g).arena_size > 0
    assert budget(g, arena_bytes=12_345).totals.ram_bytes == 12_345


def test_quantized_graph_has_the_same_figures():
    g = dw_pw((9, 9, 3), 3, 5)
    q, _ = quantized(g, np.random.default_rng(0))
    fb, qb = budget(g), budget(q)
    assert fb.layers == qb.layers and fb.totals == qb.totals and qb.quantizer == "sepgen"


def test_package_level_budget_is_the_function_after_cli_import():
    import sepgen.cli  # noqa: F401  (imports the budget submodule)

    g = dw_pw((15, 15, 3), 3, 10)
    assert sepgen.budget(g).totals.macs == 9_633


# ------------------------------------------------------------------ Keras
@pytest.fixture(scope="module")
def keras():
    require_module("tensorflow")
    import keras

    return keras


def test_params_match_keras_count_params(keras):
    L = keras.layers
    cases = [
        ([L.Conv2D(64, 3)], conv((8, 8, 3), 3, 3, 64), 1_792),
        ([L.SeparableConv2D(64, 3)], dw_pw((8, 8, 3), 3, 64), 283),
        ([L.DepthwiseConv2D(3), L.Conv2D(64, 1)], dw_pw((8, 8, 3), 3, 64, dw_bias=True), 286),
    ]
    for layers, graph, expected in cases:
        model = keras.Sequential([keras.Input((8, 8, 3)), *layers])
        assert model.count_params() == expected
        assert budget(graph).totals.params == expected


@pytest.mark.parametrize("separable, expected", [(False, 1_186_378), (True, 174_821)])
def test_vgg_keras_model_count_params(keras, separable, expected):
    model = zoo.vgg_cifar10_keras(separable, seed=0)
    assert model.count_params() == expected
    assert budget(zoo.vgg_cifar10(separable)).totals.params == expected
    try:
        from sepgen.frontends.keras import from_keras_model  # being written concurrently
    except ImportError:
        return
    assert budget(from_keras_model(model)).totals.params == expected


# ------------------------------------------------------------------ reports
REQUIRED_ROW = {"name", "op", "input_shape", "output_shape", "params", "macs", "standard_params", "standard_macs",
                "flash_bytes", "scratch_bytes"}
REQUIRED_TOTALS = {"params", "macs", "standard_params", "standard_macs", "flash_bytes", "ram_bytes"}


def small_model():
    b = GraphBuilder((15, 15, 3), name="small")
    x = b.separable_conv2d("sep", b.input, rand(RNG, 3, 3, 3, 1), rand(RNG, 1, 1, 3, 10), rand(RNG, 10),
                           activation="relu")
    x = b.flatten("flat", x)
    x = b.dense("fc", x, rand(RNG, 13 * 13 * 10, 4), rand(RNG, 4))
    return b.build(x)


def test_json_schema_and_values():
    graph = small_model()
    doc = report.to_json(budget(graph, arena_bytes=2_048))
    flash = [layer.weight_bytes() for layer in graph.layers]  # flash_bytes is the layer's weight_bytes()
    json.loads(json.dumps(doc))  # plain JSON types only
    assert set(doc) == {"model", "prefix", "arena_macro", "layers", "totals"} and doc["model"] == "small"
    assert set(doc["totals"]) == REQUIRED_TOTALS
    for row in doc["layers"]:
        assert REQUIRED_ROW <= set(row) and set(row) - REQUIRED_ROW <= {"block"}
    dw, pw, flat, fc = doc["layers"]
    assert dw == {"name": "sep/depthwise", "op": "depthwise_conv2d", "input_shape": [15, 15, 3],
                  "output_shape": [13, 13, 3], "params": 27, "macs": 4_563, "standard_params": 280,
                  "standard_macs": 45_630, "flash_bytes": flash[0], "scratch_bytes": 0, "block": "sep1"}
    assert pw["macs"] == 5_070 and pw["standard_macs"] == 0 and pw["params"] == 40 and pw["block"] == "sep1"
    assert pw["flash_bytes"] == flash[1] > 30 + 4 * 10  # int8 weights + int32 bias + requant per channel
    assert flat["op"] == "reshape" and flat["output_shape"] == [1_690] and flat["block"] is None
    assert fc["macs"] == fc["standard_macs"] == 6_760 and fc["params"] == 6_764
    assert doc["totals"] == {"params": 27 + 40 + 6_764, "macs": 4_563 + 5_070 + 6_760, "standard_params": 280 + 6_764,
                             "standard_macs": 45_630 + 6_760, "flash_bytes": sum(flash),
                             "ram_bytes": 2_048}


def test_text_and_markdown_show_the_figures():
    b = budget(dw_pw((15, 15, 3), 3, 10), arena_bytes=1_234)
    text = report.to_text(b)
    assert ("sep1 = dw + pw (depthwise-separable) replaces conv2d 3x3, 3 -> 10 channels: 4.7× fewer MACs "
            "(9,633 vs 45,630), 4.2× fewer params (67 vs 280)") in text
    for figure in ("4,563", "5,070", "45,630", "9,633", "1,234", "15x15x3 -> 13x13x3"):
        assert figure in text
    lines = text.splitlines()
    assert any(line.startswith("  dw ") for line in lines)  # block members are indented under the block row
    total = next(line for line in lines if line.startswith("total"))
    assert "9,633" in total and "45,630" in total and "4.7×" in total
    assert "RAM: 1,234 bytes (static arena, MODEL_ARENA_SIZE)" in text
    # the table is aligned: every table line (header, rows, total) has its MACs column end at the same place
    header = lines[2]
    end = header.index("MACs") + len("MACs")
    assert all(line[:end].endswith(("MACs", "4,563", "5,070", "9,633")) for line in lines
               if line.startswith(("layer", "sep1", "  dw", "  pw", "total")))
    md = report.to_markdown(b)
    for figure in ("4,563", "5,070", "45,630", "**9,633**", "4.7×", "1,234", "| sep1 |", "MODEL_ARENA_SIZE"):
        assert figure in md


def _cells(text: str, name: str) -> list[str]:
    """The cells of the text table's row ``name`` (columns are separated by two or more spaces)."""
    line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
    return re.split(r"\s{2,}", line.strip())


def test_text_rows_read_at_a_glance():
    """A block row carries the block's MACs, its standard MACs and the saving; its layers show '-' for the
    standard figures (not a misleading 0 on the pointwise); a standalone depthwise shows its own saving;
    layers with nothing to compare show '-' as saving; MAC shares add up per block."""
    g = GraphBuilder((15, 15, 3))
    x = g.depthwise_conv2d("dw", g.input, rand(RNG, 3, 3, 3, 1), None)
    x = g.conv2d("pw", x, rand(RNG, 1, 1, 3, 10), rand(RNG, 10))
    x = g.depthwise_conv2d("lone", x, rand(RNG, 3, 3, 10, 1), rand(RNG, 10))
    x = g.max_pool2d("pool", x, 2, 2)
    b = budget(g.build(x), arena_bytes=100)
    text = report.to_text(b)
    blk = b.block("sep1")
    assert _cells(text, "sep1") == ["sep1", "depthwise-separable", "15x15x3 -> 13x13x10", f"{blk.params:,}",
                                    f"{blk.macs:,}", f"{100 * blk.macs / b.totals.macs:.1f}%",
                                    f"{blk.standard_macs:,}", f"{blk.mac_saving:.1f}×",
                                    f"{b.layer('dw').flash_bytes + b.layer('pw').flash_bytes:,}"]
    for name in ("dw", "pw"):
        row = b.layer(name)
        cells = _cells(text, name)
        assert cells[3:] == [f"{row.params:,}", f"{row.macs:,}", f"{100 * row.macs / b.totals.macs:.1f}%", "-", "-",
                             f"{row.flash_bytes:,}"], cells
    lone = b.layer("lone")
    assert _cells(text, "lone")[6:8] == [f"{lone.standard_macs:,}", f"{lone.standard_macs / lone.macs:.1f}×"]
    assert _cells(text, "pool")[4:8] == ["0", "-", "0", "-"]
    assert "scratch" not in text  # no kernel needs scratch RAM: the column is left out
    assert "<PREFIX>" not in text and "<PREFIX>" not in report.to_markdown(b)
    md = report.to_markdown(b)
    assert "| &nbsp;&nbsp;pw | conv2d |" in md and "| **sep1** |" in md


def test_reports_name_the_arena_macro_of_the_prefix():
    from sepgen import memory_report

    graph = dw_pw((9, 9, 2), 3, 4)
    b = budget(graph, prefix="kws")
    assert b.arena_macro == "KWS_ARENA_SIZE"
    assert f"RAM: {b.totals.ram_bytes:,} bytes (static arena, KWS_ARENA_SIZE)" in report.to_text(b)
    assert report.to_json(b)["arena_macro"] == "KWS_ARENA_SIZE" and report.to_json(b)["prefix"] == "kws"
    plan = memory_report.to_text(memory_report.memory_plan(graph, "layer"), "kws")
    assert "(KWS_ARENA_SIZE)" in plan and "<PREFIX>" not in plan


def test_html_escapes_names():
    b = GraphBuilder((6, 6, 2), name="m&<b>")
    x = b.conv2d("<script>alert(1)</script>", b.input, rand(RNG, 3, 3, 2, 2))
    page = report.to_html(budget(b.build(x)))
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "m&amp;&lt;b&gt;" in page
    md = report.to_markdown(budget(b.build(x)))
    assert "<script>" not in md


def test_reports_on_vgg_render():
    r = budget(zoo.vgg_cifar10(separable=True))
    text = report.to_text(r)
    assert "174,821" in text and "1,186,378" in text
    assert text.count("\nsep") == 6 and text.count("\n  sep") == 6  # block rows, block lines
    assert '<table id="layers">' in report.to_html(r) and '<svg id="mac-chart"' in report.to_html(r)


def test_one_d_separable_pair_against_conv1d():
    """A SeparableConv1D over 128 steps x 3 channels -> 32 channels, kernel 5, 'valid' (124 outputs): depthwise
    124*5*3 = 1,860 and pointwise 124*3*32 = 11,904 MACs against a Conv1D's 124*5*3*32 = 59,520; params 15 + 128
    against 5*3*32 + 32 = 512.  The block line names a conv1d."""
    keras = require_module("keras")
    L = keras.layers
    model = keras.Sequential([keras.Input((128, 3)), L.SeparableConv1D(32, 5, name="sep")])
    standard = keras.Sequential([keras.Input((128, 3)), L.Conv1D(32, 5, name="conv")])
    from sepgen.frontends import load

    b = budget(load(model))
    (blk,) = b.blocks
    assert (blk.macs, blk.standard_macs) == (1_860 + 11_904, 59_520)
    assert (blk.params, blk.standard_params) == (model.count_params(), standard.count_params()) == (143, 512)
    assert blk.one_d and blk.kernel_size == (1, 5)
    assert "replaces conv1d 5, 3 -> 32 channels" in report.to_text(b)
    assert budget(load(standard)).totals.macs == 59_520
