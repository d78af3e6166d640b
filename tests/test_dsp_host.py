"""The Cortex-M DSP kernel variants built for the host: their portable #else branch is the same data flow as
the DSP branch (staged patches, blocks of pixels, the doubled-accumulator requantization) with the
instructions' arithmetic in C, so staging and blocking are checked under ASan + UBSan too, on the conv2d
grid of tests/test_ops_c.py (its CI subset; --run-slow: all).  The DSP branch itself runs on the QEMU cores
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
