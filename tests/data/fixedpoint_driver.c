/* Test driver for templates/sepgen_fixedpoint.h: reads "op a b c [d e f]" lines, prints one result per line. */
#include <stdio.h>
#include <string.h>

#include "sepgen_fixedpoint.h"

int main(void)
{
    char line[256], op[32];
    long a, b, c, d = 0, e = 0, f = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (sscanf(line, "%31s %ld %ld %ld %ld %ld %ld", op, &a, &b, &c, &d, &e, &f) < 4) {
            return 3;
        }
        if (strcmp(op, "srdhm") == 0) {
            printf("%ld\n", (long)sepgen_srdhm((int32_t)a, (int32_t)b));
        } else if (strcmp(op, "rdpot") == 0) {
            printf("%ld\n", (long)sepgen_rounding_divide_by_pot((int32_t)a, (int)b));
        } else if (strcmp(op, "mbqm") == 0) {
            printf("%ld\n", (long)sepgen_multiply_by_quantized_multiplier((int32_t)a, (int32_t)b, (int)c));
        } else if (strcmp(op, "rhma") == 0) {
            printf("%ld\n", (long)sepgen_rounding_high_mul_add((int32_t)a, (int32_t)b, (int32_t)c));
        } else if (strcmp(op, "rqwide") == 0) {
            printf("%ld\n", (long)sepgen_requantize_wide((int32_t)a, (int32_t)b, (int32_t)c, (int)d));
        } else if (strcmp(op, "rqwidefloor") == 0) {
            printf("%ld\n", (long)sepgen_requantize_wide_floor((int32_t)a, (int32_t)b, (int32_t)c, (int)d));
        } else if (strcmp(op, "rqscaled") == 0) {
            printf("%ld\n", (long)sepgen_requantize_scaled((int32_t)a, (int64_t)b, (int64_t)c, (int)d));
        } else if (strcmp(op, "hma") == 0) {
            printf("%ld\n", (long)sepgen_high_mul_add((int32_t)a, (int32_t)b, (int32_t)c));
        } else if (strcmp(op, "rqfs") == 0) {
            printf("%ld\n", (long)sepgen_requantize_floor_scaled((int32_t)a, (int32_t)b, (int32_t)c, (int)d));
        } else if (strcmp(op, "logistic") == 0) {
            printf("%ld\n", (long)sepgen_logistic((int32_t)a, (int)b));
        } else if (strcmp(op, "exp") == 0) {
            printf("%ld\n", (long)sepgen_exp_on_negative_values((int32_t)a, (int)b));
        } else if (strcmp(op, "recip") == 0) {
            int bits = 0;
            const int32_t r = sepgen_get_reciprocal((int32_t)a, (int)b, &bits);
            printf("%ld %d\n", (long)r, bits);
        } else if (strcmp(op, "rdiv") == 0) {
            printf("%ld\n", (long)sepgen_rounded_divide((int32_t)a, (int32_t)b));
        } else if (strcmp(op, "clamp") == 0) {
            printf("%ld\n", (long)sepgen_clamp((int32_t)a, (int32_t)b, (int32_t)c));
        } else if (strcmp(op, "srdhm16") == 0) {
            printf("%ld\n", (long)sepgen_srdhm_int16((int32_t)a, (int32_t)b));
        } else if (strcmp(op, "dhm16") == 0) {
            printf("%ld\n", (long)sepgen_doubling_high_mul_int16((int32_t)a, (int32_t)b));
        } else if (strcmp(op, "hswish") == 0) {
            printf("%ld\n", (long)sepgen_hard_swish((int32_t)a, (int32_t)b, (int)c, (int32_t)d, (int)e, (int32_t)f));
        } else if (strcmp(op, "halfsum") == 0) {
            printf("%ld\n", (long)sepgen_rounding_half_sum((int32_t)a, (int32_t)b));
        } else {
            return 3;
        }
    }
    return 0;
}
