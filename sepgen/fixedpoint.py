"""Integer primitives: the Python definition of sepgen's fixed-point arithmetic.

These are the TFLite/gemmlowp reference primitives, vectorized over NumPy int64
arrays that hold int32 values.  ``templates/sepgen_fixedpoint.h`` is the only C
twin; tests check the two against each other with Hypothesis.

Rounding mode: TFLite's reference default ("double rounding"): a rounding
doubling high multiply followed by a rounding right shift (round half away from
zero in the shift).  It is named once, here, as :func:`multiply_by_quantized_multiplier`.

Signed right shifts are arithmetic (as gcc/clang/arm-none-eabi-gcc implement them).
"""

from __future__ import annotations

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), saturating INT32_MIN*INT32_MIN.

    The nudge (2^30, or 1-2^30 for negative products) and C's truncating division
    give round-half-away-from-zero.
    """
    a, b = _i64(a), _i64(b)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b  # |a*b| <= 2^62: exact in int64
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates toward 0
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (0 <= exponent <= 31)."""
    x, exponent = _i64(x), _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def srdhm_nonnegative(x, multiplier) -> np.ndarray:
    """floor((x * multiplier + 2^30) / 2^31): equals saturating_rounding_doubling_high_mul for a multiplier in
    [0, 2^31) and |x| < 2^31 - 1 (no sign test; the DSP kernels' form, C twin sepgen_srdhm_nonnegative)."""
    return (_i64(x) * _i64(multiplier) + (1 << 30)) >> 31


def rounding_right_shift(x, exponent) -> np.ndarray:
    """(x + 2^(e-1) - [x < 0]) >> e: equals rounding_divide_by_pot for 1 <= e <= 31 (C twin
    sepgen_rounding_right_shift; the caller keeps the sum within int32)."""
    x, exponent = _i64(x), _i64(exponent)
    return (x + (np.int64(1) << (exponent - 1)) + (x >> 63)) >> exponent


def mve_srdhm_divide_by_pot(x, multiplier, exponent) -> np.ndarray:
    """The Helium (MVE) lane steps of ``rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m), e)``
    (C twin sepgen_mve_srdhm_divide_by_pot; equal to that composition for every int32 x, m and 0 <= e <= 31):
    VQRDMULH ``floor((2 x m + 2^31) / 2^32)`` saturating INT32_MIN * INT32_MIN; minus 1 where the result is
    negative and e > 0 (VAND/VSHR/VQADD, saturating); VRSHL by -e ``(h + 2^(e-1)) >> e`` in wider precision."""
    x, multiplier, exponent = _i64(x), _i64(multiplier), _i64(exponent)
    high = np.where((x == INT32_MIN) & (multiplier == INT32_MIN), INT32_MAX, (2 * x * multiplier + (1 << 31)) >> 32)
    fixed = np.maximum(high - ((high < 0) & (exponent > 0)), INT32_MIN)
    return (fixed + ((np.int64(1) << exponent) >> 1)) >> exponent


def rounding_high_mul_add(a, b, c) -> np.ndarray:
    """floor((a * b + 2^31) / 2^32) + c for int32 a, b, c: Arm's SMMLAR, (c * 2^32 + a * b + 2^31) >> 32
    (C twin sepgen_rounding_high_mul_add; the caller keeps the result within int32)."""
    return ((_i64(a) * _i64(b) + (1 << 31)) >> 32) + _i64(c)


def requant_round(zero_point, exponent) -> np.ndarray:
    """(2 zp + 1) * 2^(e-1) for e >= 1: the rounding half and the output zero point of a right shift by e,
    added before the shift (the third operand of requantize_floor / requantize_right_shift)."""
    return (2 * _i64(zero_point) + 1) << (_i64(exponent) - 1)


def requantize_right_shift(acc2, multiplier, round_, exponent) -> np.ndarray:
    """multiply_by_quantized_multiplier(acc, m, -e) + zp from the doubled accumulator acc2 = 2 * acc, with
    round_ = requant_round(zp, e), for 0 <= m < 2^31 and e >= 1 (C twin sepgen_requantize_right_shift).

    x = rounding_high_mul_add(acc2, m, 0) = floor((acc m + 2^30) / 2^31) is srdhm_nonnegative(acc, m);
    (x + [x < 0 ? -1 : 0] + round_) >> e is rounding_right_shift(x, e) + zp (zp * 2^e is a multiple of 2^e).
    Exact when |acc2| < 2^31 and |round_| + |acc| + 1 < 2^31 (no int32 sum overflows)."""
    x = rounding_high_mul_add(acc2, multiplier, 0)
    return (x + (x >> 63) + _i64(round_)) >> _i64(exponent)


def requantize_floor(acc2, multiplier, round_, exponent) -> np.ndarray:
    """rounding_high_mul_add(acc2, m, round_) >> e: requantize_right_shift without the negative-tie step
    (C twin sepgen_requantize_floor; on a DSP core one SMMLAR and a shift, the shift folded into SSAT).

    For x = srdhm_nonnegative(acc, m) >= 0 both are floor((x + 2^(e-1)) / 2^e) + zp (floor(floor(y) / 2^e)
    = floor(y / 2^e) merges the two roundings into one floor); for x < 0 both are <= zp.  So after a clamp
    whose lower bound is >= zp (ReLU, or zp = -128) it equals TFLite's requantization, in the domain of
    requantize_right_shift."""
    return rounding_high_mul_add(acc2, multiplier, round_) >> _i64(exponent)


def requantize_wide(acc, multiplier, zero_point, exponent, floor: bool = False) -> np.ndarray:
    """requantize_right_shift(2 acc, m, requant_round(zp, e), e) as one int64 expression (C twins
    sepgen_requantize_wide / sepgen_requantize_wide_floor; the host kernels' requantization, no int32 step).

    With t = 2 acc m + 2^31: x = floor(t / 2^32), and (x + k) >> e = floor((t + k 2^32) / 2^(32 + e)) for any
    integer k (floor(floor(y) / 2^e) = floor(y / 2^e)); k = [t < 0 ? -1 : 0] + (2 zp + 1) 2^(e-1) gives
    requantize_right_shift, k without the sign term (``floor``) requantize_floor.  Same domain: 0 <= m < 2^31,
    e >= 1, |2 acc| < 2^31 and |(2 zp + 1) 2^(e-1)| + |acc| + 1 < 2^31, where every int64 term is below 2^63."""
    acc, exponent = _i64(acc), _i64(exponent)
    t = acc * (_i64(multiplier) * 2) + (1 << 31)
    total = t + ((2 * _i64(zero_point) + 1) << (31 + exponent))
    if not floor:
        total = total + (t >> 63) * (1 << 32)
    return total >> (32 + exponent)


def requantize_scaled(acc, multiplier, addend, shift) -> np.ndarray:
    """(acc * multiplier + addend) >> shift in int64 (C twin sepgen_requantize_scaled): requantize_wide's floor
    form with one shift for every channel, from the constants of :func:`scaled_requant_constants`."""
    return (_i64(acc) * _i64(multiplier) + _i64(addend)) >> _i64(shift)


def scaled_requant_constants(multiplier: int, exponent: int, zero_point: int, common: int) -> tuple[int, int]:
    """(M, A) with requantize_scaled(acc, M, A, 32 + common) == requantize_wide(acc, m, zp, e, floor=True), for
    1 <= e <= common: numerator and denominator of floor((2 acc m + 2^31 + (2 zp + 1) 2^(31+e)) / 2^(32+e)) times
    2^(common - e), so M = 2 m 2^(common-e) and A = (2^31 + (2 zp + 1) 2^(31+e)) 2^(common-e).  Exact while
    |acc| M + |A| < 2^63 (the caller checks it with the accumulator's bound)."""
    k = common - exponent
    return (2 * multiplier) << k, ((1 << 31) + (2 * zero_point + 1) * (1 << (31 + exponent))) << k


def high_mul_add(a, b, c) -> np.ndarray:
    """floor(a * b / 2^32) + c for int32 a, b, c: Arm's SMMLA (no rounding), (c * 2^32 + a * b) >> 32 (C twin
    sepgen_high_mul_add; the caller keeps the result within int32)."""
    return ((_i64(a) * _i64(b)) >> 32) + _i64(c)


def scaled_floor_round(zero_point, exponent, scale_shift) -> np.ndarray:
    """zp * 2^E + 2^(d-1) + 2^(E-1) with E = e + d, for e >= 1 and d >= 1: the third operand of
    requantize_floor_scaled for a channel of right shift e whose accumulator is scaled by 2^(1+d)."""
    e, d = _i64(exponent), _i64(scale_shift)
    return (_i64(zero_point) << (e + d)) + (np.int64(1) << (d - 1)) + (np.int64(1) << (e + d - 1))


def requantize_floor_scaled(acc_scaled, multiplier, round_, exponent) -> np.ndarray:
    """high_mul_add(acc_s, m, round_) >> E: requantize_floor with the channel's shift moved into its
    accumulator (C twin sepgen_requantize_floor_scaled; on a DSP core one SMMLA and SSAT with a shift that is
    the same constant E for every channel of a layer).

    With acc_s = 2^(1+d) * acc, A = acc * m, E = e + d (d >= 1) and round_ = scaled_floor_round(zp, e, d):
    floor(acc_s m / 2^32) = floor(A 2^d / 2^31), and merging the floors, the result is
    floor((A 2^d + 2^(30+d) + 2^(E+30)) / 2^(31+E)) + zp = floor((A + 2^30 + 2^(e+30)) / 2^(31+e)) + zp,
    which is requantize_floor(2 acc, m, requant_round(zp, e), e) exactly (numerator and denominator share
    2^d).  Exact when |acc_s| < 2^31 and |round_| + |acc_s| / 2 < 2^31 (no int32 sum overflows)."""
    return high_mul_add(acc_scaled, multiplier, round_) >> _i64(exponent)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift / 2^31.

    ``shift`` > 0 is a left shift applied before the high multiply; ``shift`` < 0
    a rounding right shift after it.  The caller guarantees x * 2^max(shift,0)
    fits in int32 (checked at generation time for every layer).
    """
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(_i64(x) << left, multiplier), right)


def rounded_divide(acc, count) -> np.ndarray:
    """TFLite's pooling/mean division: acc / count rounded half away from zero (count > 0), as C computes
    ``acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count`` with truncating division."""
    acc, count = _i64(acc), _i64(count)
    return np.where(acc > 0, (acc + count // 2) // count, -((-acc + count // 2) // count))


def clamp(x, lo, hi) -> np.ndarray:
    """x clamped to [lo, hi]: the lower bound first, then the upper one (as C's ``sepgen_clamp``; lo <= hi in
    every use: the fused activation's [act_min, act_max] or the int8 range)."""
    return np.minimum(np.maximum(_i64(x), lo), hi)


def saturating_left_shift(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent (int32 saturation)."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def rounding_half_sum(a, b) -> np.ndarray:
    """gemmlowp RoundingHalfSum for int32: (a + b + sign) / 2 with C truncation."""
    s = _i64(a) + _i64(b)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s >> 1, -((-s) >> 1))


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap to int32 (gemmlowp's plain fixed-point add/sub on int32 lanes)."""
    return ((_i64(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# ---------------------------------------------------------------- int16 (hard swish)
INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1


def _truncating_div_pot(x, exponent: int) -> np.ndarray:
    """x / 2^exponent truncated toward zero (C's integer division)."""
    x = _i64(x)
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


def srdhm_int16(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16: round(a*b / 2^15) half away from zero (C truncating
    division after a nudge of 2^14), INT16_MIN * INT16_MIN saturating to INT16_MAX."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    high = _truncating_div_pot(ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14)), 15)
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, high)


def doubling_high_mul_int16(a, b) -> np.ndarray:
    """TFLite's SaturatingDoublingHighMul on int16 (SQDMULH): a*b / 2^15 truncated toward zero,
    INT16_MIN * INT16_MIN saturating to INT16_MAX."""
    a, b = _i64(a), _i64(b)
    high = _truncating_div_pot(a * b, 15)
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, high)


def saturating_left_shift_int16(x, amount: int) -> np.ndarray:
    """TFLite's SaturatingLeftShift (hard_swish.h): x * 2^amount saturated to int16 (0 <= amount <= 30)."""
    return np.clip(_i64(x) << amount, INT16_MIN, INT16_MAX)


def wrap_int16(x) -> np.ndarray:
    """Two's-complement wrap to int16 (the store of an int sum into an int16_t)."""
    return ((_i64(x) + (1 << 15)) & 0xFFFF) - (1 << 15)


#: HARD_SWISH: the input (x - zero_point, within +-255) is first moved to a 7-bit finer scale.
HARD_SWISH_HIRES_SHIFT = 7


def hard_swish(v, output_multiplier: int, output_exponent: int, reluish_multiplier: int, reluish_exponent: int,
               output_zero_point: int) -> np.ndarray:
    """TFLite reference_ops::HardSwish for int8 on v = x - input_zero_point, in its int16 fixed point; returns the
    int8 output (output_zero_point added with int16 wrap-around, then clamped to int8).

    x on the hi-res scale (v * 2^7) is rescaled twice: to the output scale before its right shift
    (``output_multiplier`` Q15, ``output_exponent`` <= 0) and to the "relu-ish" scale where 3.0 is 2^15
    (``reluish_multiplier`` Q15, ``reluish_exponent``, left shifts saturating, the last bit applied after the
    multiply); the relu-ish value mapped to [0, 1] multiplies the first with a truncating doubling high multiply.
    Exponents: -15 <= output_exponent <= 0, -15 <= reluish_exponent <= 31 (sepgen refuses others)."""
    hires = _i64(v) * (1 << HARD_SWISH_HIRES_SHIFT)
    preshift_output = srdhm_int16(hires, output_multiplier)
    reluish = hires
    if reluish_exponent > 0:
        reluish = saturating_left_shift_int16(reluish, reluish_exponent - 1)
    reluish = srdhm_int16(reluish, reluish_multiplier)
    if reluish_exponent > 0:
        reluish = saturating_left_shift_int16(reluish, 1)
    if reluish_exponent < 0:
        reluish = rounding_divide_by_pot(reluish, -reluish_exponent)
    reluish = (reluish + (1 << 15)) >> 1
    out = rounding_divide_by_pot(doubling_high_mul_int16(reluish, preshift_output), -output_exponent)
    return clamp(wrap_int16(out + output_zero_point), -128, 127)


# ---------------------------------------------------------------- exp / 1/(1+x)
# gemmlowp fixedpoint.h: FixedPoint<int32, I> multiplication is SRDHM of the raw
# values (integer bits add up); Rescale<J> from I bits is a shift by I - J.

def _fx_mul(a, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), a and result Q0.31 (gemmlowp Taylor series around -1/8)."""
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883
    x = wrap_int32(_i64(a) + (1 << 28))  # a + 1/8
    x2 = _fx_mul(x, x)
    x3 = _fx_mul(x2, x)
    x4 = _fx_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(_fx_mul(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + _fx_mul(constant_term, wrap_int32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: exp(a) for a <= 0 given in Q(integer_bits).(31-integer_bits).

    Returns Q0.31 raw values (exp(0) = INT32_MAX).
    """
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_left_shift(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where((remainder & bit) != 0, _fx_mul(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: 1/(1+a) for a in [0, 1) in Q0.31, by three Newton-Raphson steps (result Q0.31)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)  # (a + 1) / 2, Q0.31
    constant_48_over_17 = 1515870810  # Q2.29
    constant_neg_32_over_17 = -1010580540  # Q2.29
    x = wrap_int32(constant_48_over_17 + _fx_mul(half_denominator, constant_neg_32_over_17))
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = _fx_mul(half_denominator, x)  # Q2.29
        one_minus = wrap_int32(one_q2 - half_denominator_times_x)
        x = wrap_int32(x + saturating_left_shift(_fx_mul(x, one_minus), 2))  # Q4 -> Q2
    return saturating_left_shift(x, 1)  # ExactMulByPot<-1> (Q2 -> Q1), then Rescale<0>


def logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic: 1 / (1 + exp(-a)) for a in Q(integer_bits).(31-integer_bits); result Q0.31.

    exp(-|a|) through :func:`exp_on_negative_values`, 1/(1 + that) for a > 0, one (INT32_MAX) minus it for
    a < 0, and exactly one half (2^30) at a = 0.
    """
    a = _i64(a)
    abs_a = np.where(a > 0, a, wrap_int32(-a))
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_int32(-abs_a), integer_bits))
    return np.where(a == 0, 1 << 30, np.where(a > 0, positive, wrap_int32(INT32_MAX - positive)))


def count_leading_zeros_u32(x) -> np.ndarray:
    """Leading zero bits of x as uint32 (32 for 0)."""
    x = _i64(x) & 0xFFFFFFFF
    n = np.full(x.shape, 32, dtype=np.int64)
    for bit in range(31, -1, -1):
        n = np.where((n == 32) & (((x >> bit) & 1) == 1), 31 - bit, n)
    return n


def get_reciprocal(x, x_integer_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal: (Q0.31 of 1/x scaled into [0.5, 1), num_bits_over_unit)."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_bits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# ------------------------------------------------------------------- mean
def fold_count(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """TFLM QuantizedMeanOrSum: fold 1/count into a (multiplier, shift) pair with integer arithmetic only.

    s = min(floor(log2(count)), 32, 31 + shift); multiplier' = (multiplier << s) / count (truncating, in
    64 bits); shift' = shift - s.  A non-negative Q31 multiplier stays below 2^31.
    """
    s = min(int(count).bit_length() - 1, 32, 31 + int(shift))
    return (int(multiplier) << s) // int(count), int(shift) - s


# ---------------------------------------------------------------- softmax
#: TFLite's int8 softmax: differences are Q5.26, the sum of exps Q12.19, the output 8 bits
#: (C twins: SEPGEN_SOFTMAX_* in sepgen_fixedpoint.h).
SOFTMAX_DIFF_INTEGER_BITS = 5
SOFTMAX_SUM_INTEGER_BITS = 12
SOFTMAX_OUTPUT_BITS = 8
#: TFLite's int8 logistic: the input rescaled to Q4.27, the Q0.31 result rounded to 8 bits
#: (C twins: SEPGEN_LOGISTIC_* in sepgen_fixedpoint.h).
LOGISTIC_INPUT_INTEGER_BITS = 4
LOGISTIC_OUTPUT_BITS = 8


def softmax_exp(diff, input_multiplier: int, input_left_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax's exp of differences to the row maximum (diff <= 0) in Q0.31, and its Rescale<12> (Q12.19, the
    term of the sum of exps)."""
    rescaled = saturating_rounding_doubling_high_mul(_i64(diff) * (1 << input_left_shift), input_multiplier)
    exp = exp_on_negative_values(rescaled, SOFTMAX_DIFF_INTEGER_BITS)
    return exp, rounding_divide_by_pot(exp, SOFTMAX_SUM_INTEGER_BITS)


def softmax_int8(x, input_multiplier: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """TFLite reference int8 Softmax over the last axis (output scale 1/256, zero point -128)."""
    x = _i64(x)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    exp, exp_acc = softmax_exp(diff, input_multiplier, input_left_shift)
    sum_of_exps = wrap_int32(np.where(valid, exp_acc, 0).sum(axis=-1, keepdims=True))
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, SOFTMAX_SUM_INTEGER_BITS)
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exp),
                                   num_bits_over_unit + 31 - SOFTMAX_OUTPUT_BITS)
    out = clamp(unsat - 128, -128, 127)
    return np.where(valid, out, -128).astype(np.int8)
