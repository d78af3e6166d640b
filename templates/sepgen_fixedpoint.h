/* sepgen fixed-point primitives: the C twin of sepgen/fixedpoint.py. Do not edit.
 *
 * These are the TFLite / gemmlowp reference primitives (TFLite's default "double
 * rounding" requantization).  Signed right shifts are arithmetic, as gcc, clang
 * and arm-none-eabi-gcc implement them.  C99, <stdint.h> only.
 */
#ifndef SEPGEN_FIXEDPOINT_H
#define SEPGEN_FIXEDPOINT_H

#include <stdint.h>

#define SEPGEN_INT32_MIN ((int32_t)(-2147483647 - 1))
#define SEPGEN_INT32_MAX ((int32_t)2147483647)
/* TFLite's int8 softmax: differences in Q5.26, the sum of exps in Q12.19, 8 output bits
 * (Python twins: sepgen.fixedpoint.SOFTMAX_*). */
#define SEPGEN_SOFTMAX_DIFF_INTEGER_BITS 5
#define SEPGEN_SOFTMAX_SUM_INTEGER_BITS 12
#define SEPGEN_SOFTMAX_OUTPUT_BITS 8
/* TFLite's int8 logistic: input in Q4.27, output rounded to 8 bits (Python twins: sepgen.fixedpoint.LOGISTIC_*). */
#define SEPGEN_LOGISTIC_INPUT_INTEGER_BITS 4
#define SEPGEN_LOGISTIC_OUTPUT_BITS 8

/* round(a * b / 2^31), half away from zero; saturates the one overflowing case
 * INT32_MIN * INT32_MIN.  |a * b| <= 2^62, so the int64 product is exact. */
static inline int32_t sepgen_srdhm(int32_t a, int32_t b)
{
    const int overflow = (a == b) && (a == SEPGEN_INT32_MIN);
    const int64_t ab_64 = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab_64 >= 0 ? (1 << 30) : (1 - (1 << 30));
    const int32_t ab_x2_high32 = (int32_t)((ab_64 + nudge) / ((int64_t)1 << 31));
    return overflow ? SEPGEN_INT32_MAX : ab_x2_high32;
}

/* x / 2^exponent rounded half away from zero, 0 <= exponent <= 31. */
static inline int32_t sepgen_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* The same two steps without run-time sign tests, exact in their domain (Python twins:
 * sepgen.fixedpoint.srdhm_nonnegative / rounding_right_shift): the rounding doubling high multiply for a
 * multiplier >= 0 and |x| < 2^31 - 1 is floor((x * m + 2^30) / 2^31); the rounding divide by 2^e for
 * e >= 1 is (x + 2^(e-1) + (x < 0 ? -1 : 0)) >> e when the sum stays within int32. */
static inline int32_t sepgen_srdhm_nonnegative(int32_t x, int32_t multiplier)
{
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t sepgen_rounding_right_shift(int32_t x, int exponent)
{
    return (x + ((int32_t)1 << (exponent - 1)) + (x >> 31)) >> exponent;
}

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>

/* Helium (MVE), 4 int32 lanes: sepgen_rounding_divide_by_pot(sepgen_srdhm(x, multiplier), exponent) per lane,
 * for every int32 x and multiplier and exponent = -exponent_negated in [0, 31] (Python twin:
 * sepgen.fixedpoint.mve_srdhm_divide_by_pot).  VQRDMULH is SRDHM exactly: both are floor((x * m + 2^30) / 2^31)
 * and saturate only INT32_MIN * INT32_MIN.  VRSHL by -e rounds half up ((h + 2^(e-1)) >> e, in wider
 * precision); subtracting 1 first from a negative h (saturating; only where e > 0) makes that
 * RoundingDivideByPOT's round half away from zero. */
static inline int32x4_t sepgen_mve_srdhm_divide_by_pot(int32x4_t x, int32x4_t multiplier, int32x4_t exponent_negated)
{
    const int32x4_t high = vqrdmulhq_s32(x, multiplier);
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(high, exponent_negated), 31);
    return vrshlq_s32(vqaddq_s32(high, fixup), exponent_negated);
}
#endif


/* floor((a * b + 2^31) / 2^32) + c: Arm's SMMLAR (Python twin: sepgen.fixedpoint.rounding_high_mul_add);
 * the caller keeps the result within int32. */
static inline int32_t sepgen_rounding_high_mul_add(int32_t a, int32_t b, int32_t c)
{
    return (int32_t)((((int64_t)a * b + ((int64_t)1 << 31)) >> 32) + c);
}

/* TFLite's requantization by a multiplier >= 0 and a right shift e >= 1, plus the output zero point zp,
 * from the doubled accumulator acc2 = 2 * acc and round = (2 * zp + 1) * 2^(e-1) (Python twins and the
 * proofs: sepgen.fixedpoint.requantize_right_shift / requantize_floor).  The floor form drops the
 * negative-tie step: exact after a clamp whose lower bound is >= zp. */
static inline int32_t sepgen_requantize_right_shift(int32_t acc2, int32_t multiplier, int32_t round, int exponent)
{
    const int32_t x = sepgen_rounding_high_mul_add(acc2, multiplier, 0);
    return (x + (x >> 31) + round) >> exponent;
}

static inline int32_t sepgen_requantize_floor(int32_t acc2, int32_t multiplier, int32_t round, int exponent)
{
    return sepgen_rounding_high_mul_add(acc2, multiplier, round) >> exponent;
}

/* sepgen_requantize_right_shift(2 * acc, multiplier, (2 * zp + 1) * 2^(e-1), e) as one int64 expression, and
 * the floor form likewise (Python twin and proof: sepgen.fixedpoint.requantize_wide): with t = 2 acc m + 2^31,
 * (t + [t < 0] * -2^32 + (2 zp + 1) * 2^(31+e)) >> (32 + e).  Same domain as those two; no int32 step. */
static inline int32_t sepgen_requantize_wide(int32_t acc, int32_t multiplier, int32_t zero_point, int exponent)
{
    const int64_t t = (int64_t)acc * ((int64_t)multiplier * 2) + ((int64_t)1 << 31);
    const int64_t round = (int64_t)(2 * zero_point + 1) * ((int64_t)1 << (31 + exponent));
    return (int32_t)((t + (t >> 63) * ((int64_t)1 << 32) + round) >> (32 + exponent));
}

static inline int32_t sepgen_requantize_wide_floor(int32_t acc, int32_t multiplier, int32_t zero_point, int exponent)
{
    const int64_t t = (int64_t)acc * ((int64_t)multiplier * 2) + ((int64_t)1 << 31);
    return (int32_t)((t + (int64_t)(2 * zero_point + 1) * ((int64_t)1 << (31 + exponent))) >> (32 + exponent));
}

/* (acc * multiplier + addend) >> shift in int64: the floor form above with one shift for every channel, the
 * per-channel multiplier and addend scaled to it at generation (Python twin and proof:
 * sepgen.fixedpoint.requantize_scaled / scaled_requant_constants). */
static inline int32_t sepgen_requantize_scaled(int32_t acc, int64_t multiplier, int64_t addend, int shift)
{
    return (int32_t)(((int64_t)acc * multiplier + addend) >> shift);
}

/* floor(a * b / 2^32) + c: Arm's SMMLA (Python twin: sepgen.fixedpoint.high_mul_add); the caller keeps the
 * result within int32. */
static inline int32_t sepgen_high_mul_add(int32_t a, int32_t b, int32_t c)
{
    return (int32_t)((((int64_t)a * b) >> 32) + c);
}

/* sepgen_requantize_floor for a channel of right shift e whose accumulator is scaled by 2^(1+d) (d >= 1):
 * acc_scaled = 2^(1+d) * acc, round = zp * 2^E + 2^(d-1) + 2^(E-1) and exponent E = e + d, the same for every
 * channel of a layer (Python twin and the proof: sepgen.fixedpoint.requantize_floor_scaled). */
static inline int32_t sepgen_requantize_floor_scaled(int32_t acc_scaled, int32_t multiplier, int32_t round, int exponent)
{
    return sepgen_high_mul_add(acc_scaled, multiplier, round) >> exponent;
}

/* x * multiplier * 2^shift / 2^31 (shift > 0: left shift first; shift < 0:
 * rounding right shift after).  Callers guarantee x * 2^max(shift, 0) fits in
 * int32: sepgen proves it for every layer at generation time. */
static inline int32_t sepgen_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    return sepgen_rounding_divide_by_pot(sepgen_srdhm(x * (1 << left_shift), multiplier), right_shift);
}

/* acc / count rounded half away from zero (count > 0): TFLite's pooling and mean division. */
static inline int32_t sepgen_rounded_divide(int32_t acc, int32_t count)
{
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

/* x clamped to [lo, hi] (lower bound first, then upper): the fused activation's [act_min, act_max]
 * or the int8 range, before the store to int8. */
static inline int32_t sepgen_clamp(int32_t x, int32_t lo, int32_t hi)
{
    const int32_t above_lo = x < lo ? lo : x;
    return above_lo > hi ? hi : above_lo;
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent. */
static inline int32_t sepgen_saturating_left_shift(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return SEPGEN_INT32_MAX;
    }
    if (x < -threshold) {
        return SEPGEN_INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* Plain two's-complement int32 add/sub (gemmlowp's fixed-point +/-), free of UB. */
static inline int32_t sepgen_wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t sepgen_wrap_sub(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

static inline int32_t sepgen_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0): a and result in Q0.31 (Taylor series around -1/8). */
static inline int32_t sepgen_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = sepgen_wrap_add(a, 1 << 28); /* a + 1/8 */
    const int32_t x2 = sepgen_srdhm(x, x);
    const int32_t x3 = sepgen_srdhm(x2, x);
    const int32_t x4 = sepgen_srdhm(x2, x2);
    const int32_t x4_over_4 = sepgen_rounding_divide_by_pot(x4, 2);
    const int32_t poly = sepgen_rounding_divide_by_pot(
        sepgen_wrap_add(sepgen_srdhm(sepgen_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return sepgen_wrap_add(constant_term, sepgen_srdhm(constant_term, sepgen_wrap_add(x, poly)));
}

/* exp(a) for a <= 0 in Q(integer_bits).(31 - integer_bits); result Q0.31. */
static inline int32_t sepgen_exp_on_negative_values(int32_t a, int integer_bits)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = sepgen_wrap_sub(a & (one_quarter - 1), one_quarter);
    int32_t result = sepgen_exp_on_interval_between_negative_one_quarter_and_0_excl(
        sepgen_saturating_left_shift(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = sepgen_wrap_sub(a_mod_quarter_minus_one_quarter, a);
    int exponent;
    for (exponent = -2; exponent <= 4; ++exponent) {
        if (integer_bits > exponent && (remainder & ((int32_t)1 << (fractional_bits + exponent))) != 0) {
            result = sepgen_srdhm(result, barrel[exponent + 2]);
        }
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0;
    }
    return a == 0 ? SEPGEN_INT32_MAX : result;
}

static inline int32_t sepgen_one_over_one_plus_x_for_x_in_0_1(int32_t a);

/* gemmlowp logistic: 1 / (1 + exp(-a)) for a in Q(integer_bits).(31 - integer_bits); result Q0.31
 * (one half exactly at 0, INT32_MAX minus the positive side's value below 0). */
static inline int32_t sepgen_logistic(int32_t a, int integer_bits)
{
    const int32_t abs_a = a > 0 ? a : sepgen_wrap_sub(0, a);
    const int32_t positive = sepgen_one_over_one_plus_x_for_x_in_0_1(
        sepgen_exp_on_negative_values(sepgen_wrap_sub(0, abs_a), integer_bits));
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    return a > 0 ? positive : sepgen_wrap_sub(SEPGEN_INT32_MAX, positive);
}

/* 1 / (1 + a) for a in [0, 1) in Q0.31, three Newton-Raphson steps in Q2.29. */
static inline int32_t sepgen_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = sepgen_rounding_half_sum(a, SEPGEN_INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    int32_t x = sepgen_wrap_add(constant_48_over_17, sepgen_srdhm(half_denominator, constant_neg_32_over_17));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = sepgen_srdhm(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = sepgen_wrap_sub(1 << 29, half_denominator_times_x);
        x = sepgen_wrap_add(x, sepgen_saturating_left_shift(sepgen_srdhm(x, one_minus_half_denominator_times_x), 2));
    }
    return sepgen_saturating_left_shift(x, 1);
}

/* TFLite's int8 HARD_SWISH (reference_ops::HardSwish) in its int16 fixed point (Python twins:
 * sepgen.fixedpoint.srdhm_int16, doubling_high_mul_int16, saturating_left_shift_int16, hard_swish). */
#define SEPGEN_HARD_SWISH_HIRES_SHIFT 7

/* round(a * b / 2^15) half away from zero; INT16_MIN * INT16_MIN saturates to INT16_MAX. */
static inline int32_t sepgen_srdhm_int16(int32_t a, int32_t b)
{
    const int32_t ab = a * b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (a == b && a == -32768) ? 32767 : (ab + nudge) / (1 << 15);
}

/* a * b / 2^15 truncated toward zero (SQDMULH); INT16_MIN * INT16_MIN saturates to INT16_MAX. */
static inline int32_t sepgen_doubling_high_mul_int16(int32_t a, int32_t b)
{
    return (a == b && a == -32768) ? 32767 : (a * b) / (1 << 15);
}

/* x * 2^amount saturated to int16 (0 <= amount <= 30). */
static inline int32_t sepgen_saturating_left_shift_int16(int32_t x, int amount)
{
    const int64_t shifted = (int64_t)x * ((int64_t)1 << amount);
    return shifted > 32767 ? 32767 : (shifted < -32768 ? -32768 : (int32_t)shifted);
}

/* v = x - input_zero_point (|v| <= 255) -> the int8 output: v on the hi-res scale (v * 2^7) rescaled to the
 * pre-shift output scale and to the relu-ish scale (3.0 = 2^15), the relu-ish value mapped to [0, 1] times the
 * first, the output exponent's rounding right shift, + output_zero_point stored into int16 (wrapping), clamped.
 * -15 <= output_exponent <= 0 and -15 <= reluish_exponent <= 31 (checked at generation time). */
static inline int32_t sepgen_hard_swish(int32_t v, int32_t output_multiplier, int output_exponent,
                                        int32_t reluish_multiplier, int reluish_exponent, int32_t output_zero_point)
{
    const int32_t hires = v * (1 << SEPGEN_HARD_SWISH_HIRES_SHIFT);
    const int32_t preshift_output = sepgen_srdhm_int16(hires, output_multiplier);
    int32_t reluish = hires;
    int32_t out;
    if (reluish_exponent > 0) {
        reluish = sepgen_saturating_left_shift_int16(reluish, reluish_exponent - 1);
    }
    reluish = sepgen_srdhm_int16(reluish, reluish_multiplier);
    if (reluish_exponent > 0) {
        reluish = sepgen_saturating_left_shift_int16(reluish, 1);
    }
    if (reluish_exponent < 0) {
        reluish = sepgen_rounding_divide_by_pot(reluish, -reluish_exponent);
    }
    reluish = (reluish + (1 << 15)) >> 1;
    out = sepgen_rounding_divide_by_pot(sepgen_doubling_high_mul_int16(reluish, preshift_output), -output_exponent);
    out = (int32_t)((uint32_t)(out + output_zero_point + 32768) & 0xFFFFu) - 32768; /* the int16_t store */
    return sepgen_clamp(out, -128, 127);
}

static inline int sepgen_count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* TFLite GetReciprocal: Q0.31 of 1/x scaled into [0.5, 1); *num_bits_over_unit receives the scale. */
static inline int32_t sepgen_get_reciprocal(int32_t x, int x_integer_bits, int *num_bits_over_unit)
{
    const int headroom_plus_one = sepgen_count_leading_zeros((uint32_t)x);
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = x_integer_bits - headroom_plus_one;
    return sepgen_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

#endif /* SEPGEN_FIXEDPOINT_H */
