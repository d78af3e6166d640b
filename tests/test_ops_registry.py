"""The op is the unit of change.

* Registry test: every built-in op has a simulator (float and int8), a portable template, an
  accumulator bound, budget figures, and a mapping (or an explicit "not expressible") in every
  frontend, each mapping naming source constructs the frontend really handles.
* Extension test: a new op defined entirely inside this test (an elementwise "absolute value"
  with its own template in a temporary directory) is built, quantized, generated, compiled and
  verified byte for byte, without editing any file under sepgen/ or templates/.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sepgen import codegen, ir, ops, verification
from sepgen.frontends import numpy as npz_frontend
from sepgen.frontends.builder import GraphBuilder
from sepgen.quantize import quantize
from util import rand

FRONTEND_MODULES = ("sepgen.frontends.numpy", "sepgen.frontends.tflite", "sepgen.frontends.keras")


def every_op_graph() -> ir.Graph:
    """One graph that uses every built-in op (through the shared builder)."""
    rng = np.random.default_rng(0)
    b = GraphBuilder((9, 9, 2))
    x = b.rescaling("scale_in", b.input, 0.5, 0.25)  # folded into the input quantization
    a = b.conv2d("c", x, rand(rng, 3, 3, 2, 4), rand(rng, 4), 2, 1, "same", "relu")
    d = b.depthwise_conv2d("dw", a, rand(rng, 3, 3, 4, 1), rand(rng, 4), padding="same")
    d = b.conv2d("pw", d, rand(rng, 1, 1, 4, 4), rand(rng, 4))
    y = b.add("add", [a, d])
    y = b.multiply("se", [y, b.global_avg_pool2d("se_gap", y)])  # per-channel gate
    y = b.add("bias", [y], constant=np.linspace(-1, 1, 4))
    y = b.concatenate("cat", [y, b.leaky_relu("cat_leaky", y, 0.5)])  # inputs rescaled
    y = b.conv2d("cat_pw", y, rand(rng, 1, 1, 8, 4))
    y = b.minimum("min", [b.maximum("max", [y, b.leaky_relu("max_leaky", y, 0.1)]), y])
    y = b.upsample_nearest("up", y, (1, 2))
    y = b.pad("pad", y, ((1, 0), (0, 2)))
    y = b.max_pool2d("mp", y, 2, 1, "same")
    y = b.activation("mp_relu6", y, "relu6")  # after pooling: a Relu op of its own
    y = b.leaky_relu("leaky", y, 0.2)
    y = b.activation("hswish", y, "hard_swish")
    y = b.activation("sig", y, "sigmoid")
    y = b.avg_pool2d("ap", y, 2)
    y = b.global_avg_pool2d("gap", y)
    y = b.dense("fc", b.reshape("rs", y, (4,)), rand(rng, 4, 3), rand(rng, 3), "softmax")
    return b.build(y)


@pytest.fixture(scope="module")
def quantized_every_op():
    g = every_op_graph()
    return g, quantize(g, np.random.default_rng(1).normal(size=(16, 9, 9, 2)).astype(np.float32), progress=False)


def test_every_builtin_op_is_registered_and_used(quantized_every_op):
    g, _ = quantized_every_op
    assert set(ops.BUILTIN_OPS) <= set(ir.LAYER_TYPES)
    assert {layer.op for layer in g.layers} == set(ops.BUILTIN_OPS)


@pytest.mark.parametrize("op", ops.BUILTIN_OPS)
def test_op_owns_simulator_template_bound_and_budget(op, quantized_every_op):
    cls = ir.LAYER_TYPES[op]
    assert cls.run_float is not ir.Layer.run_float and cls.run_int8 is not ir.Layer.run_int8
    assert cls.infer_shape.__func__ is not ir.Layer.infer_shape.__func__
    portable = cls.kernel_templates()["portable"]
    assert (codegen.templates_dir() / portable).is_file() or cls.aliases_input
    g, q = quantized_every_op
    layer = next(layer for layer in q.layers if layer.op == op)
    x = [np.zeros((1,) + q.tensors[t].shape, np.int8) for t in layer.inputs]
    assert layer.run_int8(q, x).shape == (1,) + layer.output_shape
    float_layer = next(layer for layer in g.layers if layer.op == op)
    assert float_layer.run_float([v.astype(np.float32) for v in x]).shape == (1,) + layer.output_shape
    bound = layer.accumulator_bound(q)
    assert isinstance(bound, int) and 0 <= bound < 1 << 31
    assert all(isinstance(v, int) and v >= 0 for v in (layer.macs(), layer.params(), layer.weight_bytes(),
                                                       layer.scratch_bytes()))


@pytest.mark.parametrize("module", FRONTEND_MODULES)
def test_every_frontend_maps_or_refuses_every_op(module):
    """Each frontend says, per op, what produces it or why it cannot (would have caught the missing .npz pad)."""
    import importlib

    if module.endswith("keras"):
        pytest.importorskip("keras")
    frontend = importlib.import_module(module)
    for op in ops.BUILTIN_OPS:
        assert (op in frontend.EXPRESSES) != (op in frontend.NOT_EXPRESSIBLE), f"{module}: {op}"
    handled = {"sepgen.frontends.numpy": set(npz_frontend.SPEC_TYPES),
               "sepgen.frontends.tflite": set(getattr(frontend, "HANDLED_OPS", ()))
               | set(getattr(frontend, "HANDLED_PATTERNS", ())),
               "sepgen.frontends.keras": set(getattr(frontend, "_HANDLERS", ()))}[module]
    for op, sources in frontend.EXPRESSES.items():
        assert sources and set(sources) <= handled, f"{module}: {op} -> {sources} not all handled"


# ------------------------------------------------------------------ extension
ABS_TEMPLATE = """{% set L = ctx.layer %}
/* Elementwise |x - zp| re-centred on the output zero point (a test-defined op). */
static void {{ ctx.fn }}(const int8_t *input, int8_t *output)
{
    int i;
    for (i = 0; i < {{ L.output_shape | join(" * ") }}; ++i) {
        int32_t v = (int32_t)input[i] + {{ ctx.input_offsets[0] }};
        v = (v < 0 ? -v : v) + {{ ctx.output_zero_point }};
        output[i] = (int8_t)(v > 127 ? 127 : v);
    }
}
"""


def test_a_new_op_defined_in_a_test_is_generated_compiled_and_verified(tmp_path):
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "test_abs.c.j2").write_text(ABS_TEMPLATE)

    @dataclass(frozen=True, eq=False)
    class Abs(ir.Layer):
        """|x|, with the output quantization equal to the input's."""

        op = "test_abs"
        template_dir = str(tmp_path)

        @classmethod
        def infer_shape(cls, input_shapes, **_):
            return tuple(input_shapes[0])

        def output_quant(self, input_quants, calibrated):
            return input_quants[0]

        def run_float(self, xs):
            return np.abs(xs[0]).astype(np.float32)

        def run_int8(self, graph, xs):
            zp = graph.tensors[self.inputs[0]].quant.zero_point
            v = np.abs(xs[0].astype(np.int64) - zp) + graph.tensors[self.output].quant.zero_point
            return np.minimum(v, 127).astype(np.int8)

        def accumulator_bound(self, graph):
            return 256

    try:
        rng = np.random.default_rng(3)
        b = GraphBuilder((5, 4, 3))
        y = b.conv2d("c", b.input, rand(rng, 3, 3, 3, 6), rand(rng, 6), padding="same")
        y = b.layer(Abs, "abs", [y])
        y = b.conv2d("pw", y, rand(rng, 1, 1, 6, 4), rand(rng, 4))
        g = b.build(y)
        q = quantize(g, rng.normal(size=(32, 5, 4, 3)).astype(np.float32), progress=False)
        assert q.layer("abs").op == "test_abs"
        c = codegen.render(q, "ext")["ext.c"]
        assert "layer 1: test_abs 'abs'" in c and "a test-defined op" in c
        result = verification.verify_host(q, verification.random_inputs(q, 24))
        assert result.ok, result.mismatch
        # and verification fails when the op's C and its simulator disagree
        (tmp_path / "layers" / "test_abs.c.j2").write_text(ABS_TEMPLATE.replace("-v : v", "-v : v + 1"))
        codegen._environment.cache_clear()
        assert not verification.verify_host(q, verification.random_inputs(q, 24)).ok
    finally:
        ir.LAYER_TYPES.pop("test_abs", None)
        codegen._environment.cache_clear()


def test_target_picks_a_variant_and_falls_back_to_portable(tmp_path):
    """A variant template beside the portable one is used by the targets that list it, only by them."""
    (tmp_path / "layers").mkdir()
    marker = "/* variant: cortexm_dsp */"
    portable = (codegen.templates_dir() / "layers" / "softmax.c.j2").read_text()
    (tmp_path / "layers" / "test_softmax_dsp.c.j2").write_text(marker + "\n" + portable)

    @dataclass(frozen=True, eq=False)
    class VariantSoftmax(ops.Softmax):
        op = "test_softmax_variant"
        template_dir = str(tmp_path)
        kernels = {"portable": "layers/softmax.c.j2", "cortexm_dsp": "layers/test_softmax_dsp.c.j2"}

    try:
        rng = np.random.default_rng(4)
        b = GraphBuilder((6,))
        y = b.dense("fc", b.input, rand(rng, 6, 5), rand(rng, 5))
        y = b.layer(VariantSoftmax, "sm", [y], beta=1.0)
        q = quantize(b.build(y), rng.normal(size=(16, 6)).astype(np.float32), progress=False)
        assert marker not in codegen.render(q, "m", "host")["m.c"]
        assert marker in codegen.render(q, "m", "cortex-m4")["m.c"]
        assert marker in codegen.render(q, "m", "cortex-m55")["m.c"]  # falls through mve -> cortexm_dsp
    finally:
        ir.LAYER_TYPES.pop("test_softmax_variant", None)
        codegen._environment.cache_clear()


@pytest.mark.parametrize("op", ops.BUILTIN_OPS)
def test_row_kernels_exist_for_streamable_ops(op, quantized_every_op):
    """An op that can run inside a streamed chain (sepgen.schedule.row_map) has a portable row kernel; every
    variant's row kernel exists and belongs to a variant the op has whole (the target picks it the same way)."""
    from sepgen.schedule import row_map

    cls = ir.LAYER_TYPES[op]
    _, q = quantized_every_op
    layer = next(layer for layer in q.layers if layer.op == op)
    rows = cls.row_kernel_templates()
    for template in rows.values():
        if row_map(layer) is not None:
            assert (codegen.templates_dir() / template).is_file(), template
    assert set(rows) <= set(cls.kernel_templates()) | {"portable"}
