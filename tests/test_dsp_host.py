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
    assert "sepgen_dw_pack" in files["model.c"]
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
