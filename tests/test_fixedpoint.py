"""fixedpoint.py against its only C twin (templates/sepgen_fixedpoint.h), with Hypothesis.

Each Hypothesis example is a batch of argument tuples, run through one compiled
driver process, so thousands of values are compared per second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sepgen import fixedpoint as fp
from sepgen import toolchain
from sepgen.codegen import templates_dir

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
SETTINGS = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module")
def driver() -> Path:
    sources = {"driver.c": (Path(__file__).parent / "data" / "fixedpoint_driver.c").read_text(),
               "sepgen_fixedpoint.h": (templates_dir() / "sepgen_fixedpoint.h").read_text()}
    return toolchain.compile_executable(sources, toolchain.SANITIZE_FLAGS)


def run_c(driver: Path, op: str, rows: list[tuple[int, ...]]) -> list[list[int]]:
    text = "".join(f"{op} {' '.join(str(v) for v in row)}\n" for row in rows)
    proc = subprocess.run([str(driver)], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [[int(v) for v in line.split()] for line in proc.stdout.splitlines()]


@SETTINGS
@given(st.lists(st.tuples(INT32, INT32), min_size=1, max_size=200))
def test_srdhm(driver, pairs):
    rows = [(a, b, 0) for a, b in pairs] + [(-(1 << 31), -(1 << 31), 0)]
    want = fp.saturating_rounding_doubling_high_mul([r[0] for r in rows], [r[1] for r in rows])
    assert [r[0] for r in run_c(driver, "srdhm", rows)] == want.tolist()


@SETTINGS
@given(st.lists(st.tuples(INT32, st.integers(0, 31)), min_size=1, max_size=200))
def test_rounding_divide_by_pot(driver, pairs):
    rows = [(a, e, 0) for a, e in pairs]
    want = fp.rounding_divide_by_pot([r[0] for r in rows], [r[1] for r in rows])
    assert [r[0] for r in run_c(driver, "rdpot", rows)] == want.tolist()


@st.composite
def requant_case(draw):
    """(x, multiplier, shift) with x * 2^max(shift,0) in int32, as sepgen's bounds guarantee."""
    shift = draw(st.integers(-31, 12))
    multiplier = draw(st.one_of(st.integers(1 << 30, (1 << 31) - 1), st.integers(0, (1 << 31) - 1)))
    limit = ((1 << 31) - 1) >> max(shift, 0)
    return draw(st.integers(-limit, limit)), multiplier, shift


@SETTINGS
@given(st.lists(requant_case(), min_size=1, max_size=200))
def test_multiply_by_quantized_multiplier(driver, rows):
    want = fp.multiply_by_quantized_multiplier(*map(list, zip(*rows)))
    assert [r[0] for r in run_c(driver, "mbqm", rows)] == want.tolist()


@SETTINGS
@given(st.lists(st.integers(-(1 << 31) + 1, 0), min_size=1, max_size=200), st.sampled_from([5, 6, 12]))
def test_exp_on_negative_values(driver, values, integer_bits):
    rows = [(a, integer_bits, 0) for a in values] + [(0, integer_bits, 0)]
    want = fp.exp_on_negative_values([r[0] for r in rows], integer_bits)
    assert [r[0] for r in run_c(driver, "exp", rows)] == want.tolist()


@SETTINGS
@given(st.lists(st.integers(-(1 << 31) + 1, (1 << 31) - 1), min_size=1, max_size=200), st.sampled_from([0, 4, 5]))
def test_logistic(driver, values, integer_bits):
    rows = [(a, integer_bits, 0) for a in values] + [(0, integer_bits, 0), (1, integer_bits, 0), (-1, integer_bits, 0)]
    want = fp.logistic([r[0] for r in rows], integer_bits)
    assert [r[0] for r in run_c(driver, "logistic", rows)] == want.tolist()


def test_logistic_matches_real_logistic():
    a = np.arange(-(1 << 31) + 1, 1 << 31, 9_999_991, dtype=np.int64)
    real = 1.0 / (1.0 + np.exp(-a / 2.0 ** 27))
    assert np.max(np.abs(fp.logistic(a, 4) / 2.0 ** 31 - real)) < 1e-6


@SETTINGS
@given(st.lists(st.integers(1, (1 << 31) - 1), min_size=1, max_size=200))
def test_get_reciprocal(driver, values):
    rows = [(x, 12, 0) for x in values]
    value, bits = fp.get_reciprocal([r[0] for r in rows], 12)
    assert run_c(driver, "recip", rows) == [[int(v), int(b)] for v, b in zip(value, bits)]


@SETTINGS
@given(st.lists(st.tuples(INT32, INT32), min_size=1, max_size=200))
def test_rounding_half_sum(driver, pairs):
    rows = [(a, b, 0) for a, b in pairs]
    want = fp.rounding_half_sum([r[0] for r in rows], [r[1] for r in rows])
    assert [r[0] for r in run_c(driver, "halfsum", rows)] == want.tolist()


@SETTINGS
@given(st.lists(st.tuples(st.integers(-(1 << 24), 1 << 24), st.integers(1, 1 << 16)), min_size=1, max_size=200))
def test_rounded_divide(driver, pairs):
    rows = [(a, c, 0) for a, c in pairs]
    want = fp.rounded_divide([r[0] for r in rows], [r[1] for r in rows])
    assert [r[0] for r in run_c(driver, "rdiv", rows)] == want.tolist()


@SETTINGS
@given(st.lists(st.tuples(INT32, INT32, INT32), min_size=1, max_size=200))
def test_clamp(driver, rows):
    """Any int32 triple, also lo > hi (the C and Python order of the two bounds must agree there too)."""
    rows = rows + [(-(1 << 31), -128, 127), ((1 << 31) - 1, 0, 6), (5, 9, 2)]
    want = fp.clamp(*map(list, zip(*rows)))
    assert [r[0] for r in run_c(driver, "clamp", rows)] == want.tolist()


INT16 = st.integers(-(1 << 15), (1 << 15) - 1)


@SETTINGS
@given(st.lists(st.tuples(INT16, INT16), min_size=1, max_size=200))
def test_int16_high_multiplies(driver, pairs):
    rows = [(a, b, 0) for a, b in pairs] + [(-(1 << 15), -(1 << 15), 0), (-(1 << 15), 1 << 14, 0), (3, -5, 0)]
    a, b = [r[0] for r in rows], [r[1] for r in rows]
    assert [r[0] for r in run_c(driver, "srdhm16", rows)] == fp.srdhm_int16(a, b).tolist()
    assert [r[0] for r in run_c(driver, "dhm16", rows)] == fp.doubling_high_mul_int16(a, b).tolist()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, (1 << 15) - 1), st.integers(-15, 0), st.integers(0, (1 << 15) - 1), st.integers(-15, 31),
       st.integers(-128, 127))
def test_hard_swish(driver, out_m, out_e, rel_m, rel_e, out_zp):
    """Every input value v = x - zero point in [-255, 255] for one parameter set."""
    rows = [(v, out_m, out_e, rel_m, rel_e, out_zp) for v in range(-255, 256)]
    want = [int(fp.hard_swish(v, out_m, out_e, rel_m, rel_e, out_zp)) for v in range(-255, 256)]
    assert [r[0] for r in run_c(driver, "hswish", rows)] == want
    assert fp.hard_swish(np.arange(-255, 256), out_m, out_e, rel_m, rel_e, out_zp).tolist() == want


def test_int16_primitives_known_values():
    assert fp.srdhm_int16([1 << 14, -3, 3], [1 << 14, 1 << 14, 1 << 14]).tolist() == [1 << 13, -1, 2]  # gemmlowp: a negative tie rounds toward 0
    assert fp.doubling_high_mul_int16([-3, 3], [1 << 14, 1 << 14]).tolist() == [-1, 1]
    assert fp.saturating_left_shift_int16([100, -100, 300], 7).tolist() == [12800, -12800, 32767]
    assert fp.wrap_int16([32768, -32769]).tolist() == [-32768, 32767]


def test_exp_matches_real_exp():
    """Sanity of the definition itself: exp in Q0.31 within 1e-6 of the real function."""
    a = np.linspace(-16, 0, 4001)
    raw = np.round(a * (1 << 26)).astype(np.int64)
    got = fp.exp_on_negative_values(raw, 5) / 2.0**31
    assert np.max(np.abs(got - np.exp(raw / 2.0**26))) < 1e-6


def test_reciprocal_matches_real_value():
    x = np.arange(1, 1 << 20, 997, dtype=np.int64) << 8
    value, bits = fp.get_reciprocal(x, 12)
    real = 1.0 / (x / 2.0**19)  # x is Q12.19
    assert np.max(np.abs(value / 2.0**31 * 2.0**-bits.astype(float) - real) / real) < 1e-8


def test_known_values():
    assert fp.saturating_rounding_doubling_high_mul(1 << 30, 1 << 30).item() == 1 << 29
    assert fp.saturating_rounding_doubling_high_mul(-(1 << 31), -(1 << 31)).item() == (1 << 31) - 1
    assert fp.rounding_divide_by_pot([5, -5, 6, -6, 7], 1).tolist() == [3, -3, 3, -3, 4]
    assert fp.multiply_by_quantized_multiplier(100, 1 << 30, 0).item() == 50
    assert fp.clamp([-129, -128, 0, 6, 7, 127, 200], 0, 6).tolist() == [0, 0, 0, 6, 6, 6, 6]
    assert fp.clamp(5, 9, 2).item() == 2  # lo > hi: the upper bound wins, as in C


def test_softmax_constants_have_one_definition_and_its_c_twin():
    import re

    header = (templates_dir() / "sepgen_fixedpoint.h").read_text()
    for name in ("SOFTMAX_DIFF_INTEGER_BITS", "SOFTMAX_SUM_INTEGER_BITS", "SOFTMAX_OUTPUT_BITS",
                 "LOGISTIC_INPUT_INTEGER_BITS", "LOGISTIC_OUTPUT_BITS", "HARD_SWISH_HIRES_SHIFT"):
        match = re.search(rf"#define SEPGEN_{name} (\d+)", header)
        assert match and int(match.group(1)) == getattr(fp, name), name
    template = (templates_dir() / "layers" / "softmax.c.j2").read_text()
    assert not re.search(r"values\([^)]*, \d+\)|reciprocal\([^,]*, \d+", template)  # no literal copies
    logistic = (templates_dir() / "layers" / "logistic.c.j2").read_text()
    assert not re.search(r"sepgen_logistic\([^)]*, \d+\)|, 23\)", logistic)


@settings(max_examples=2000, deadline=None)
@given(st.integers(-(2**31) + 2, 2**31 - 2), st.integers(0, 2**31 - 1), st.integers(1, 31))
def test_sign_free_requantization_equals_the_reference(x, multiplier, exponent):
    """The DSP kernels' sign-free forms (srdhm_nonnegative, rounding_right_shift) equal the TFLite primitives
    in their domain; their C twins in sepgen_fixedpoint.h are the same expressions."""
    high = fp.saturating_rounding_doubling_high_mul(x, multiplier)
    assert int(fp.srdhm_nonnegative(x, multiplier)) == int(high)
    if abs(int(high)) + (1 << (exponent - 1)) < 2**31:
        assert int(fp.rounding_right_shift(high, exponent)) == int(fp.rounding_divide_by_pot(high, exponent))


EDGE_INT32 = [-(1 << 31), -(1 << 31) + 1, -(1 << 30), -(1 << 30) - 1, -3, -2, -1, 0, 1, 2, (1 << 30), (1 << 31) - 1]


@settings(max_examples=2000, deadline=None)
@given(st.one_of(INT32, st.sampled_from(EDGE_INT32)), st.one_of(INT32, st.sampled_from(EDGE_INT32)),
       st.integers(0, 31))
def test_helium_requantization_steps_equal_the_reference(x, multiplier, exponent):
    """The Helium lane steps (VQRDMULH, the negative fixup, VRSHL) are SRDHM then RoundingDivideByPOT, for every
    int32 x and multiplier (sign and saturation included) and every exponent in [0, 31]."""
    want = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, multiplier), exponent)
    assert int(fp.mve_srdhm_divide_by_pot(x, multiplier, exponent)) == int(want)


def test_helium_requantization_c_twin_on_cortex_m55():
    """sepgen_mve_srdhm_divide_by_pot (sepgen_fixedpoint.h, MVE intrinsics) run on Cortex-M55 under QEMU equals
    its Python twin and the TFLite composition on edge values (ties, INT32_MIN, every exponent) and random ones."""
    from conftest import require_tool

    from sepgen.cortexm import targets as cortexm_targets
    from sepgen.cortexm.build import run_elf

    require_tool(cortexm_targets.CROSS_COMPILER)
    require_tool(cortexm_targets.QEMU)
    rng = np.random.default_rng(55)
    edges = [(x, m, e) for x in EDGE_INT32 for m in EDGE_INT32 for e in (0, 1, 2, 30, 31)]
    # SRDHM(2h - 1, 2^30) = h: h on a tie of the division by 2^e (+-(k + 1/2) * 2^e) and next to it
    ties = [(2 * h - 1, 1 << 30, e) for e in range(1, 31) for k in (0, 1, 5) for d in (-1, 0, 1)
            for h in (k * (1 << e) + (1 << (e - 1)) + d, -(k * (1 << e) + (1 << (e - 1))) + d) if abs(h) < (1 << 30)]
    randoms = [(int(x), int(m), int(e)) for x, m, e in zip(rng.integers(-(1 << 31), 1 << 31, 4000),
                                                          rng.integers(-(1 << 31), 1 << 31, 4000),
                                                          rng.integers(0, 32, 4000))]
    rows = edges + ties + randoms
    rows += rows[: (-len(rows)) % 4]  # whole vectors of 4 lanes
    x, m, e = (np.array(col, dtype=np.int64) for col in zip(*rows))
    target = cortexm_targets.get_target("cortex-m55")
    sources = {"driver.c": (Path(__file__).parent / "data" / "mve_fixedpoint_driver.c").read_text(),
               "sepgen_fixedpoint.h": (templates_dir() / "sepgen_fixedpoint.h").read_text(),
               **cortexm_targets.firmware_sources(target)}
    compiler = toolchain.Compiler(toolchain.find_tool(cortexm_targets.CROSS_COMPILER,
                                                          cortexm_targets.CROSS_PACKAGES))
    elf = toolchain.compile_executable(sources, cortexm_targets.CROSS_FLAGS + target.cpu_flags
                                       + ("-T", f"{target.board}.ld"), compiler=compiler)
    payload = np.stack([x, m, -e], axis=1).astype("<i4").tobytes()
    got = np.frombuffer(run_elf(elf, target, payload, "out.bin"), dtype="<i4").astype(np.int64)
    want = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, m), e)
    assert np.array_equal(fp.mve_srdhm_divide_by_pot(x, m, e), want)
    bad = np.flatnonzero(got != want)
    assert got.size == want.size and bad.size == 0, [(rows[i], int(got[i]), int(want[i])) for i in bad[:5]]


@SETTINGS
@given(st.lists(st.tuples(INT32, INT32, st.integers(-(1 << 29), 1 << 29)), min_size=1, max_size=200))
def test_rounding_high_mul_add(driver, rows):
    """Arm's SMMLAR in C and Python: floor((a * b + 2^31) / 2^32) + c."""
    rows = rows + [(-(1 << 31), -(1 << 31), -(1 << 29)), (-(1 << 31), (1 << 31) - 1, 0), (1, (1 << 31) - 1, 5)]
    want = [((a * b + (1 << 31)) >> 32) + c for a, b, c in rows]  # Python integers: exact
    assert fp.rounding_high_mul_add(*np.array(rows).T).tolist() == want
    assert [r[0] for r in run_c(driver, "rhma", rows)] == want


@SETTINGS
@given(st.lists(st.tuples(INT32, INT32, st.integers(-(1 << 29), 1 << 29)), min_size=1, max_size=200))
def test_high_mul_add(driver, rows):
    """Arm's SMMLA in C and Python: floor(a * b / 2^32) + c."""
    rows = rows + [(-(1 << 31), -(1 << 31), -(1 << 29)), (-(1 << 31), (1 << 31) - 1, 0), (-1, 1, 5)]
    want = [((a * b) >> 32) + c for a, b, c in rows]  # Python integers: exact
    assert fp.high_mul_add(*np.array(rows).T).tolist() == want
    assert [r[0] for r in run_c(driver, "hma", rows)] == want


def _reference_requant(acc, multiplier, exponent, zero_point):
    return int(fp.multiply_by_quantized_multiplier(acc, multiplier, -exponent)) + zero_point


@st.composite
def doubled_requant_case(draw):
    """(acc, multiplier, e, zp) in the domain of requantize_right_shift / requantize_floor: |2 acc| < 2^31 and
    |(2 zp + 1) 2^(e-1)| + |acc| + 1 < 2^31 (what sepgen.ops._common.right_shift_requant checks per layer)."""
    exponent = draw(st.integers(1, 23))
    zero_point = draw(st.integers(-128, 127))
    multiplier = draw(st.one_of(st.integers(1 << 30, (1 << 31) - 1), st.integers(0, (1 << 31) - 1),
                                st.sampled_from([0, 1, 1 << 30, (1 << 31) - 1, 3 << 29])))
    limit = min((1 << 30) - 1, (1 << 31) - 2 - abs(int(fp.requant_round(zero_point, exponent))))
    return draw(st.integers(-limit, limit)), multiplier, exponent, zero_point


@settings(max_examples=3000, deadline=None)
@given(doubled_requant_case(), st.integers(-128, 127), st.integers(-128, 127))
def test_doubled_accumulator_requantization_equals_the_reference(case, lo, hi):
    """The DSP kernels' requantization from 2 * acc: the right-shift form equals TFLite's
    MultiplyByQuantizedMultiplier + zero point everywhere in its domain; the floor form (one SMMLAR and a
    shift) equals it after any clamp whose lower bound is >= the zero point."""
    acc, multiplier, exponent, zp = case
    round_ = fp.requant_round(zp, exponent)
    want = _reference_requant(acc, multiplier, exponent, zp)
    assert int(fp.requantize_right_shift(2 * acc, multiplier, round_, exponent)) == want
    floor = int(fp.requantize_floor(2 * acc, multiplier, round_, exponent))
    lo = max(lo, zp)
    assert int(fp.clamp(floor, lo, max(hi, lo))) == int(fp.clamp(want, lo, max(hi, lo)))


@settings(max_examples=300, deadline=None)
@given(st.lists(doubled_requant_case(), min_size=1, max_size=100))
def test_wide_requantization_equals_the_doubled_forms_and_its_c_twin(driver, cases):
    """The host kernels' one-expression requantization (int64) equals requantize_right_shift / requantize_floor
    (so TFLite's, as proven above) in their domain, in Python and in C."""
    acc, multiplier, exponent, zp = (np.array(v, dtype=np.int64) for v in zip(*cases))
    round_ = fp.requant_round(zp, exponent)
    want = fp.requantize_right_shift(2 * acc, multiplier, round_, exponent)
    want_floor = fp.requantize_floor(2 * acc, multiplier, round_, exponent)
    np.testing.assert_array_equal(fp.requantize_wide(acc, multiplier, zp, exponent), want)
    np.testing.assert_array_equal(fp.requantize_wide(acc, multiplier, zp, exponent, floor=True), want_floor)
    rows = [(a, m, z, e) for a, m, e, z in cases]
    assert [r[0] for r in run_c(driver, "rqwide", rows)] == want.tolist()
    assert [r[0] for r in run_c(driver, "rqwidefloor", rows)] == want_floor.tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(doubled_requant_case(), min_size=1, max_size=100), st.integers(0, 8))
def test_scaled_requantization_equals_the_floor_form_and_its_c_twin(driver, cases, extra):
    """One shift for every channel: requantize_scaled with scaled_requant_constants equals the floor form of
    requantize_wide (so TFLite's after a clamp at or above the zero point) wherever |acc| M + |A| < 2^63."""
    rows, want = [], []
    for acc, multiplier, exponent, zp in cases:
        common = exponent + extra
        m2, addend = fp.scaled_requant_constants(multiplier, exponent, zp, common)
        if abs(acc) * m2 + abs(addend) >= 1 << 63:
            continue
        rows.append((acc, m2, addend, 32 + common))
        want.append(int(fp.requantize_wide(acc, multiplier, zp, exponent, floor=True)))
    if not rows:
        return
    assert fp.requantize_scaled(*np.array(rows, dtype=object).T.astype(np.int64)).tolist() == want
    assert [r[0] for r in run_c(driver, "rqscaled", rows)] == want


def test_wide_requantization_exhaustively_and_at_the_domain_edge(driver):
    """Every accumulator around zero (the ties) and the largest ones the domain allows, for large exponents too."""
    for multiplier, exponent in [(1 << 30, 1), (1 << 30, 7), (3 << 29, 13), ((1 << 31) - 1, 23), (1, 2)]:
        for zp in (-128, 0, 127):
            limit = min((1 << 30) - 1, (1 << 31) - 2 - abs(int(fp.requant_round(zp, exponent))))
            window = (3 << min(exponent, 9)) * 8
            acc = np.concatenate([np.arange(-window, window + 1),
                                  [-limit, -limit + 1, limit - 1, limit]]).astype(np.int64)
            want = fp.multiply_by_quantized_multiplier(acc, multiplier, -exponent) + zp
            np.testing.assert_array_equal(fp.requantize_wide(acc, multiplier, zp, exponent), want)
            np.testing.assert_array_equal(fp.clamp(fp.requantize_wide(acc, multiplier, zp, exponent, floor=True), zp, 127),
                                          fp.clamp(want, zp, 127))
            rows = [(int(a), multiplier, zp, exponent) for a in acc[::7].tolist() + acc[-4:].tolist()]
            assert [r[0] for r in run_c(driver, "rqwide", rows)] == \
                fp.requantize_wide(*np.array(rows).T).tolist()


@pytest.mark.parametrize("multiplier", [1 << 30, (1 << 30) + 1, 3 << 29, (1 << 31) - 1, 1518500250, 1])
@pytest.mark.parametrize("exponent", [1, 2, 3, 7, 13])
def test_doubled_accumulator_requantization_exhaustively(multiplier, exponent):
    """Every accumulator in a window around zero (where the rounding ties of both steps are), every zero point:
    the same identities as above, exhaustively."""
    acc = np.arange(-(3 << exponent) * 40, (3 << exponent) * 40 + 1, dtype=np.int64)
    for zp in (-128, -127, -1, 0, 5, 127):
        round_ = fp.requant_round(zp, exponent)
        want = fp.multiply_by_quantized_multiplier(acc, multiplier, -exponent) + zp
        np.testing.assert_array_equal(fp.requantize_right_shift(2 * acc, multiplier, round_, exponent), want)
        floor = fp.requantize_floor(2 * acc, multiplier, round_, exponent)
        np.testing.assert_array_equal(fp.clamp(floor, zp, 127), fp.clamp(want, zp, 127))
        differ = floor != want  # negative ties only: both below the zero point, so the clamp hides them
        assert (want[differ] < zp).all() and (floor[differ] <= zp).all()
    if multiplier == 1 << 30:  # many ties: the floor form really differs before the clamp
        assert (fp.requantize_floor(2 * acc, multiplier, fp.requant_round(0, exponent), exponent)
                != fp.multiply_by_quantized_multiplier(acc, multiplier, -exponent)).any()


@st.composite
def scaled_requant_case(draw):
    """(acc, multiplier, e, zp, d) with the accumulator scaled by 2^(1+d) inside requantize_floor_scaled's domain:
    |2^(1+d) acc| < 2^31 and |round| + |acc_s| / 2 < 2^31."""
    acc, multiplier, exponent, zero_point = draw(doubled_requant_case())
    d = draw(st.integers(1, 8))
    round_ = abs(int(fp.scaled_floor_round(zero_point, exponent, d)))
    limit = min(((1 << 31) - 1) >> (1 + d), max(0, (1 << 31) - 1 - round_) >> d)
    return max(-limit, min(limit, acc)), multiplier, exponent, zero_point, d


@settings(max_examples=3000, deadline=None)
@given(scaled_requant_case())
def test_scaled_floor_requantization_equals_the_floor_form(case):
    """A channel's right shift e moved into its accumulator (scaled by 2^(1+d)) and a layer-wide shift e + d: the
    same value as the floor form from 2 * acc, so the same clamped output as TFLite's requantization."""
    acc, multiplier, exponent, zp, d = case
    want = int(fp.requantize_floor(2 * acc, multiplier, fp.requant_round(zp, exponent), exponent))
    got = fp.requantize_floor_scaled(acc << (1 + d), multiplier, fp.scaled_floor_round(zp, exponent, d), exponent + d)
    assert int(got) == want


@pytest.mark.parametrize("multiplier", [1 << 30, 3 << 29, (1 << 31) - 1, 1518500250])
@pytest.mark.parametrize("exponent,d", [(1, 1), (3, 2), (7, 1), (7, 5), (12, 3)])
def test_scaled_floor_requantization_exhaustively(driver, multiplier, exponent, d):
    """Every accumulator in a window around zero (the rounding ties), every kind of zero point, in C and Python."""
    acc = np.arange(-(3 << (exponent + d)) * 8, (3 << (exponent + d)) * 8 + 1, 7, dtype=np.int64)
    for zp in (-128, -1, 0, 127):
        round_ = int(fp.scaled_floor_round(zp, exponent, d))
        want = fp.requantize_floor(2 * acc, multiplier, fp.requant_round(zp, exponent), exponent)
        got = fp.requantize_floor_scaled(acc << (1 + d), multiplier, round_, exponent + d)
        np.testing.assert_array_equal(got, want)
        rows = [(int(a) << (1 + d), multiplier, round_, exponent + d) for a in acc[::97]]
        assert [r[0] for r in run_c(driver, "rqfs", rows)] == got[::97].tolist()


def test_right_shift_requant_domain():
    """The DSP kernels take the doubled-accumulator requantization only inside the domain proven above: right
    shifts, multipliers >= 0, |2 acc| < 2^31 and (2 zp + 1) * 2^(e-1) + |acc| + 1 < 2^31 for any zero point."""
    from sepgen.ir import Requant
    from sepgen.ops._common import right_shift_requant

    def rq(multipliers, shifts):
        return Requant(np.array(multipliers, dtype=np.int32), np.array(shifts, dtype=np.int32))

    assert right_shift_requant(rq([1 << 30, 3 << 29], [-7, -8]), 1000) == {"right_shift": [7, 8], "uniform": None}
    assert right_shift_requant(rq([1 << 30, 3 << 29], [-7, -7]), 1000)["uniform"] == 7
    assert right_shift_requant(rq([1 << 30], [-7]), (1 << 30) - 1) is not None
    assert right_shift_requant(rq([1 << 30], [-7]), 1 << 30) is None  # 2 * acc overflows
    assert right_shift_requant(rq([1 << 30], [-24]), 1000) is None  # 257 * 2^23 + ...: the rounding term
    assert right_shift_requant(rq([1 << 30], [-23]), 1000) is not None
    assert right_shift_requant(rq([1 << 30, 1 << 30], [-7, 0]), 1000) is None  # not a right shift
    assert right_shift_requant(rq([-(1 << 30)], [-7]), 1000) is None  # negative multiplier
