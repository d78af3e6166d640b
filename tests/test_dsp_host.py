"""The Cortex-M DSP kernel variants built for the host: their portable #else branch is the same data flow as
the DSP branch (staged patches, blocks of pixels, the doubled-accumulator requantization) with the
instructions' arithmetic in C, so staging and blocking are checked under ASan + UBSan too, on the conv2d
grid of tests/test_ops_c.py (its CI subset; --run-slow: all), and the depthwise kernel's staging on its own cases.  The DSP branch itself runs on the QEMU cores
(tests/test_cortexm.py); clang -Weverything covers both branches' warnings (tests/test_c_warnings.py).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from test_ops_c import CONV_CASES, _grid
from util import quantized, rand, single_layer

from sepgen import codegen, verification


@pytest.mark.parametrize("kernel,stride,padding,dilation,shape,cout,act", _grid(CONV_CASES, 12))
def test_conv2d_dsp_kernel_under_sanitizers(kernel, stride, padding, dilation, shape, cout, act):
    rng = np.random.default_rng(zlib.crc32(repr((kernel, stride, padding, dilation, shape, cout, act)).encode()))
    g = single_layer(shape, lambda b, x: b.conv2d(
        "conv", x, rand(rng, *kernel, shape[2], cout, scale=0.3), rand(rng, cout, scale=0.2), stride, dilation,
        padding, act))
    graph, inputs = quantized(g, rng)
    files = codegen.render(graph, "model", "cortex-m4")
    # fewer than 4 MACs per output (a 1x1 conv over 1 or 3 channels): the portable kernel
    assert ("sepgen_dsp_smlad" in files["model.c"]) == (kernel[0] * kernel[1] * shape[2] >= 4)
    result = verification.verify_host(graph, inputs, sanitize=True, files=files)
    assert result.ok, f"sanitizer build of the cortex-m4 kernel: {result.mismatch}"


# ------------------------------------------------------------------------------ row kernels (streamed chains)


def conv_ring_chain(seed: int = 0):
    """A chain whose windowed convolutions read rings of rows (not only the stem its whole input): 3x3 stride-2
    stem, 3x3 'same' conv, depthwise depth multiplier 2, a 3x2 dilated 'valid' conv, a 2x2 stride-2 conv."""
    from sepgen.frontends.builder import GraphBuilder

    rng = np.random.default_rng(seed)
    b = GraphBuilder((13, 9, 3))
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 8), rand(rng, 8), 2, 1, "same", "relu")
    y = b.conv2d("c2", y, rand(rng, 3, 3, 8, 8), rand(rng, 8), 1, 1, "same", "relu")
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 8, 2), rand(rng, 16), 1, 1, "same", "relu")
    y = b.conv2d("c3", y, rand(rng, 3, 2, 16, 5), rand(rng, 5), 1, 2, "valid", "none")
    y = b.conv2d("c4", y, rand(rng, 2, 2, 5, 8), None, 2, 1, "same", "relu6")
    return b.build(y)


def streamed_cases():
    """(id, float graph) of the streamed chains the row-kernel variants are checked on."""
    from test_schedule import CHAINS, chain_graph, mobilenet_like

    return ([(f"chain{i}", lambda c=c: chain_graph(*c)) for i, c in enumerate(CHAINS)]
            + [("conv-ring", conv_ring_chain), ("mobilenet-like", mobilenet_like)])


def row_variants(graph, target: str) -> list[tuple[str, str]]:
    """(op, row-kernel variant) of every layer streamed under --schedule stream on ``target``."""
    from sepgen.schedule import schedule

    env = codegen.environment()
    return [(graph.layers[i].op, codegen.row_kernel_variant(env, graph.layers[i], target, graph)[0])
            for st in schedule(graph, "stream").streams.values() for i in st.layers]


#: how the rows inside a streamed chain are kept: "rows" the schedule's own choice (on every case here some rows
#: placed one by one, through row offset tables), "rings" fixed rings forced (row y in slot y % ring)
PLACEMENTS = ("rows", "rings")


def use_placement(monkeypatch, graph, placement: str) -> None:
    """Make the schedules of this test keep fixed rings (placement "rings": sepgen.schedule builds its stages
    without row placement), or check that the schedule places some rows one by one that a convolution row kernel
    reads or writes (placement "rows"), so both addressings of the variant row kernels stay covered."""
    from sepgen import schedule as sched

    if placement == "rings":
        def rings_only(graph, mode, chains, layer_arena, reuse_input=False, memo=None):
            return sched._placed(graph, mode, chains, layer_arena, reuse_input, False, {} if memo is None else memo)

        monkeypatch.setattr(sched, "_build", rings_only)
        assert not sched.schedule(graph, "stream").row_offsets
        return
    s = sched.schedule(graph, "stream")
    convs = [graph.layers[i] for st in s.streams.values() for i in st.layers
             if graph.layers[i].op in ("conv2d", "depthwise_conv2d")]
    assert any(t in s.row_offsets for layer in convs for t in (layer.inputs[0], layer.output))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("name,build", streamed_cases(), ids=[c[0] for c in streamed_cases()])
def test_row_kernel_variants_under_sanitizers(name, build, target, placement, monkeypatch):
    """Streamed chains (strides, 'valid', depth multipliers 2 and 3, dilation, pools between, convolutions reading
    rings or rows placed one by one) rendered for the DSP and Helium cores: every convolution's row kernel is the
    target's variant (the whole-tensor template with ctx.rows; Helium has no depthwise kernel for depth multipliers
    > 1, those take the DSP one), pooling stays portable, and the portable #else branches (for the DSP depthwise
    the same data flow, ring and row table addressing included) are bit-exact under ASan + UBSan."""
    graph, inputs = quantized(build(), np.random.default_rng(1))
    use_placement(monkeypatch, graph, placement)
    for op, variant in row_variants(graph, target):
        if op not in ("conv2d", "depthwise_conv2d"):
            assert variant == "portable", op
        elif target == "cortex-m4":
            assert variant == "cortexm_dsp", op
        else:
            assert variant in ("mve", "cortexm_dsp"), op
    files = codegen.render(graph, "model", target, "stream")
    assert "row_begin" in files["model.c"]
    result = verification.verify_host(graph, inputs, sanitize=True, files=files)
    assert result.ok, f"{name} on {target}, streamed: {result.mismatch}"


# Depthwise cases for the DSP kernel's staging: 1, 2 and 4 input channels staged together (channel counts 3, 2, 8),
# depth multipliers, dilation, stride 2, k x 1 / 1 x k / even kernels, and a 48-wide image whose staged rows do
# not fit at once (bands of rows).
DW_DSP_CASES = [
    ((3, 3), 1, "same", 1, 1, (7, 9, 3)), ((3, 3), 2, "same", 2, 1, (9, 7, 2)), ((3, 3), 1, "same", 1, 2, (9, 5, 8)),
    ((5, 5), 2, "valid", 3, 1, (11, 9, 4)), ((3, 1), 1, "same", 1, 1, (6, 5, 8)), ((1, 3), 2, "valid", 2, 1, (5, 8, 2)),
    ((2, 2), 1, "same", 1, 1, (6, 7, 4)), ((1, 1), 1, "valid", 1, 1, (4, 5, 8)), ((3, 3), 1, "same", 1, 1, (48, 48, 2)),
    ((3, 3), 2, "same", 1, 1, (48, 48, 8)), ((3, 3), 1, "same", 1, 1, (40, 48, 3)),
]


@pytest.mark.parametrize("kernel,stride,padding,dm,dilation,shape", DW_DSP_CASES)
def test_depthwise_dsp_kernel_under_sanitizers(kernel, stride, padding, dm, dilation, shape):
    rng = np.random.default_rng(zlib.crc32(repr((kernel, stride, padding, dm, dilation, shape)).encode()))
    g = single_layer(shape, lambda b, x: b.depthwise_conv2d(
        "dw", x, rand(rng, *kernel, shape[2], dm), rand(rng, shape[2] * dm, scale=0.2), stride, dilation, padding,
        "relu6"))
    graph, inputs = quantized(g, rng)
    files = codegen.render(graph, "model", "cortex-m4")
    assert "sepgen_dsp_fresh(" in files["model.c"]  # the DSP depthwise kernel, not the portable one
    result = verification.verify_host(graph, inputs, sanitize=True, files=files)
    assert result.ok, f"sanitizer build of the cortex-m4 depthwise kernel: {result.mismatch}"


def test_depthwise_dsp_scaled_requantization_under_sanitizers():
    """The DS-CNN block's depthwise layer (ReLU, per-channel right shifts that differ) takes the requantization
    with every channel's shift moved into its taps and bias (one SMMLA + SSAT per output); exact on the host."""
    from sepgen import zoo

    rng = np.random.default_rng(3)
    graph, inputs = quantized(zoo.ds_cnn_block(), rng)
    files = codegen.render(graph, "model", "cortex-m4")
    assert "_requantize_scaled(acc" in files["model.c"] and "sepgen_requantize_floor_scaled" in files["model.c"]
    result = verification.verify_host(graph, inputs, sanitize=True, files=files)
    assert result.ok, f"sanitizer build of the cortex-m4 DS block: {result.mismatch}"
