"""The MicroPython .py backend's fixed-point primitives are generated from sepgen.fixedpoint (one definition):
the translation, run as scalar Python, equals the NumPy originals (Hypothesis); anything it cannot translate
is refused; every op's MicroPython kernel (relu, leaky_relu, logistic and hard_swish included; broadcast and
constant operands, concatenation along any axis) runs bit-exact inside MicroPython."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_tool
from hypothesis import given, settings, strategies as st
from test_ops_registry import every_op_graph
from util import rand

from sepgen import fixedpoint as fp
from sepgen import ops
from sepgen.codegen import templates_dir
from sepgen.errors import UserError
from sepgen.frontends.builder import GraphBuilder
from sepgen.ir import LAYER_TYPES
from sepgen.micropython import pyfixedpoint, pymodule
from sepgen.ops.resize_nearest import ResizeNearest
from sepgen.micropython.run import check_constants, compare_outputs, run_module
from sepgen.quantize import quantize
from sepgen.verification import random_inputs

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
SETTINGS = settings(max_examples=300, deadline=None)
EDGES = [-(1 << 31), -(1 << 31) + 1, -1, 0, 1, (1 << 30), (1 << 31) - 1]


@pytest.fixture(scope="module")
def scalar():
    namespace: dict = {}
    exec(pyfixedpoint.translate(), namespace)  # noqa: S102 - our own generated code
    return lambda name: namespace[pyfixedpoint.name(name)]


def same(scalar_fn, numpy_fn, *args) -> None:
    want = numpy_fn(*args)
    got = scalar_fn(*args)
    if isinstance(want, tuple):
        assert tuple(int(w) for w in want) == tuple(int(g) for g in got), args
    else:
        assert int(got) == int(want), args


@SETTINGS
@given(INT32 | st.sampled_from(EDGES), INT32 | st.sampled_from(EDGES))
def test_two_int32_primitives(scalar, a, b):
    for name in ("saturating_rounding_doubling_high_mul", "rounding_half_sum", "_fx_mul"):
        same(scalar(name), getattr(fp, name), a, b)
    same(scalar("wrap_int32"), fp.wrap_int32, a * 3 + b)
    same(scalar("clamp"), fp.clamp, a, min(b, 0), max(b, 0))


@SETTINGS
@given(INT32, st.integers(0, 31), st.integers(1, 1 << 16))
def test_shifts_and_divisions(scalar, x, e, count):
    same(scalar("rounding_divide_by_pot"), fp.rounding_divide_by_pot, x, e)
    same(scalar("rounded_divide"), fp.rounded_divide, x, count)
    same(scalar("count_leading_zeros_u32"), fp.count_leading_zeros_u32, x)
    if e >= 1:
        same(scalar("saturating_left_shift"), fp.saturating_left_shift, x, e)


@SETTINGS
@given(st.integers(0, (1 << 31) - 1), st.integers(-31, 30), INT32)
def test_multiply_by_quantized_multiplier(scalar, multiplier, shift, x):
    x >>= max(shift, 0)  # the caller's guarantee: x * 2^max(shift, 0) fits int32
    same(scalar("multiply_by_quantized_multiplier"), fp.multiply_by_quantized_multiplier, x, multiplier, shift)


@SETTINGS
@given(st.integers(-(1 << 31), 0), st.integers(0, 12), st.integers(0, (1 << 31) - 1), st.integers(1, (1 << 31) - 1))
def test_exp_reciprocal(scalar, a, integer_bits, unit, total):
    same(scalar("exp_on_negative_values"), fp.exp_on_negative_values, a, integer_bits)
    same(scalar("_exp_on_interval_between_negative_one_quarter_and_0_excl"),
         fp._exp_on_interval_between_negative_one_quarter_and_0_excl, -(a % (1 << 29)) - 1)
    same(scalar("one_over_one_plus_x_for_x_in_0_1"), fp.one_over_one_plus_x_for_x_in_0_1, unit)
    same(scalar("get_reciprocal"), fp.get_reciprocal, total, fp.SOFTMAX_SUM_INTEGER_BITS)


def test_untranslatable_numpy_is_refused(monkeypatch):
    """A primitive written with a NumPy call the translation does not carry fails generation, loudly."""
    def rounding_half_sum(a, b):
        return np.abs(a) + b

    monkeypatch.setattr(fp, "rounding_half_sum", rounding_half_sum)
    with pytest.raises(pyfixedpoint.UntranslatableFixedPoint, match="np.abs"):
        pyfixedpoint.translate(("rounding_half_sum",))


def test_module_carries_only_the_primitives_it_calls():
    code = pyfixedpoint.translate_used("v = _fp_clamp(_fp_multiply_by_quantized_multiplier(a, m, s), -128, 127)")
    defined = [line.split("(")[0][4:] for line in code.splitlines() if line.startswith("def ")]
    assert defined == ["_fp_saturating_rounding_doubling_high_mul", "_fp_rounding_divide_by_pot",
                       "_fp_multiply_by_quantized_multiplier", "_fp_clamp"]


def test_every_computed_op_names_a_micropython_kernel():
    for op in ops.BUILTIN_OPS:
        cls = LAYER_TYPES[op]
        if not cls.aliases_input:
            template = cls.kernel_templates().get(pymodule.VARIANT)
            assert template == f"micropython/layers/{op}.py.j2" and (templates_dir() / template).is_file(), op


def test_op_without_a_micropython_kernel_is_refused_by_name():
    g = every_op_graph()
    q = quantize(g, np.random.default_rng(1).normal(size=(8, 9, 9, 2)).astype(np.float32), progress=False)
    layer = next(layer for layer in q.layers if layer.op == "logistic")

    class NoKernel:
        name, op = layer.name, "logistic"

        @staticmethod
        def instance_kernels(graph):
            return {"portable": "layers/logistic.c.j2"}

    with pytest.raises(UserError, match=f"layer '{layer.name}': op 'logistic' has no MicroPython kernel"):
        pymodule.kernel_template(q, NoKernel())


@pytest.mark.parametrize("viper", [True, False], ids=["viper", "plain"])
def test_every_op_inside_micropython(viper):
    """One graph with every op (relu6, leaky_relu and sigmoid as ops of their own) as a .py module, inside the
    unix-port MicroPython: every output byte equals the simulator's."""
    micropython = require_tool("micropython")
    g = every_op_graph()
    q = quantize(g, np.random.default_rng(1).normal(size=(16, 9, 9, 2)).astype(np.float32), progress=False)
    files = {name: text.encode() for name, text in pymodule.render_python(q, "everyop").items()}
    if not viper:
        del files["everyop_viper.py"]
    inputs = random_inputs(q, 12)
    run = run_module(micropython, files, "everyop", inputs)
    assert run.backend == ("viper" if viper else "python")
    check_constants(q, run, "every-op module")
    result = compare_outputs(q, inputs, run.outputs)
    assert result.ok, result.mismatch


def _module_matches_simulator(micropython: str, g, prefix: str, what: str, viper: bool = True) -> None:
    q = quantize(g, np.random.default_rng(2).normal(size=(16,) + g.tensors[g.input].shape).astype(np.float32),
                 progress=False)
    files = {name: text.encode() for name, text in pymodule.render_python(q, prefix).items()}
    if not viper:
        del files[f"{prefix}_viper.py"]
    inputs = random_inputs(q, 8)
    run = run_module(micropython, files, prefix, inputs)
    assert run.backend == ("viper" if viper else "python")
    check_constants(q, run, what)
    result = compare_outputs(q, inputs, run.outputs)
    assert result.ok, result.mismatch


@pytest.mark.parametrize("viper", [True, False], ids=["viper", "plain"])
def test_operand_layouts_inside_micropython(viper):
    """The two-operand kernels with the smaller operand first or second (per-channel vector, scalar, constant),
    concatenation of three inputs along rows, columns and channels, and an uneven nearest resize: every output
    byte equals the simulator's inside MicroPython (the viper module's one-value requantization, and without it
    the plain one)."""
    micropython = require_tool("micropython")
    b = GraphBuilder((4, 3, 3))
    x = b.input
    gate = b.global_avg_pool2d("gap", x)
    y = b.multiply("mul_first_small", [gate, x], activation="relu")
    y = b.add("add_first_small", [b.global_avg_pool2d("gap2", y), y])
    y = b.multiply("mul_scalar", [y], constant=np.array(-0.75))
    y = b.maximum("max_const", [y], constant=np.array([-0.5, 0.0, 0.25]))
    y = b.minimum("min_vec", [y, gate])
    y = b.add("add_const_hwc", [y], constant=np.linspace(-2.0, 2.0, 36).reshape(4, 3, 3))
    rows = b.concatenate("cat_rows", [y, b.leaky_relu("l1", y, 0.3), x], axis=0)
    cols = b.concatenate("cat_cols", [rows, b.leaky_relu("l2", rows, 0.2)], axis=1)
    y = b.concatenate("cat_ch", [cols, b.multiply("sq", [cols, cols]), cols], axis=-1)
    y = b.layer(ResizeNearest, "resize", [y], rows=(0, 0, 3, 5, 11), cols=(5, 0, 2, 2))
    _module_matches_simulator(micropython, b.build(y), "operands", "operand-layouts module", viper=viper)


def weighted_shapes_graph():
    """conv2d, depthwise_conv2d and fully_connected in the shapes whose MicroPython loops differ: 1x1 windows
    (stride 2, input channels within one unrolled block, beyond it with a remainder), windows unrolled whole
    and by column class (strides (2, 1), 'same' padding clipping rows and columns, dilation), depth
    multiplier 2, 5x5 and 7x5 depthwise windows, dilated columns, windows too large to unroll whole or by
    row, and dense layers of 20 and 80 inputs; no activation between most layers, so input offsets other
    than 128 occur."""
    rng = np.random.default_rng(3)
    b = GraphBuilder((11, 9, 3))
    x = b.conv2d("c_s21", b.input, rand(rng, 5, 3, 3, 8), rand(rng, 8), (2, 1), 1, "same")  # 6x9x8
    x = b.depthwise_conv2d("dw_dil", x, rand(rng, 3, 3, 8, 1), rand(rng, 8), 1, 2, "same")
    x = b.depthwise_conv2d("dw_5x5", x, rand(rng, 5, 5, 8, 1), rand(rng, 8), 1, 1, "same", "relu")
    x = b.depthwise_conv2d("dw_7x5", x, rand(rng, 7, 5, 8, 1), rand(rng, 8), 1, 1, "same")
    x = b.depthwise_conv2d("dw_dm2", x, rand(rng, 3, 3, 8, 2), rand(rng, 16), 2, 1, "same")  # 3x5x16
    x = b.conv2d("pw_s2", x, rand(rng, 1, 1, 16, 40), rand(rng, 40), 2)  # 2x3x40
    x = b.conv2d("pw_rest", x, rand(rng, 1, 1, 40, 40), rand(rng, 40))
    x = b.conv2d("c_deep", x, rand(rng, 2, 2, 40, 9), rand(rng, 9), 1, 1, "same")
    x = b.conv2d("c_dil", x, rand(rng, 2, 3, 9, 8), rand(rng, 8), 1, (1, 2), "same")
    x = b.conv2d("c_valid", b.conv2d("c_wide", x, rand(rng, 3, 3, 8, 8), rand(rng, 8), 1, 1, "same"),
                 rand(rng, 2, 2, 8, 10), rand(rng, 10), 1, 1, "valid")  # 1x2x10
    x = b.dense("fc_80", b.dense("fc_20", b.reshape("flat", x, (20,)), rand(rng, 20, 80), rand(rng, 80)),
                rand(rng, 80, 5), rand(rng, 5))
    return b.build(x)


@pytest.mark.parametrize("viper", [True, False], ids=["viper", "plain"])
def test_weighted_shapes_inside_micropython(viper):
    """Every conv2d / depthwise_conv2d / fully_connected loop variant of the .py module (weighted_shapes_graph),
    viper and plain: every output byte equals the simulator's inside MicroPython."""
    micropython = require_tool("micropython")
    _module_matches_simulator(micropython, weighted_shapes_graph(), "weighted", "weighted-shapes module", viper)
