/* Cortex-M55 test firmware for sepgen_mve_srdhm_divide_by_pot (templates/sepgen_fixedpoint.h): reads
 * little-endian int32 triples (x, multiplier, -exponent) from the host file inputs.bin through semihosting,
 * 4 lanes at a time, and writes one int32 result per triple to out.bin. */
#include <stdint.h>

#include "sepgen_fixedpoint.h"
#include "sepgen_semihost.h"

#if !defined(__ARM_FEATURE_MVE)
#error "build for a core with MVE (Helium), e.g. -mcpu=cortex-m55"
#endif

int main(void)
{
    int32_t rows[12], out[4];
    const int in = sh_open("inputs.bin", SH_MODE_RB);
    const int result = sh_open("out.bin", SH_MODE_WB);
    if (in < 0 || result < 0) {
        return SH_EXIT_IO;
    }
    while (sh_read(in, rows, (int32_t)sizeof rows) == (int32_t)sizeof rows) {
        int lane;
        int32_t x[4], m[4], e[4];
        for (lane = 0; lane < 4; ++lane) {
            x[lane] = rows[3 * lane];
            m[lane] = rows[3 * lane + 1];
            e[lane] = rows[3 * lane + 2];
        }
        vst1q_s32(out, sepgen_mve_srdhm_divide_by_pot(vld1q_s32(x), vld1q_s32(m), vld1q_s32(e)));
        if (sh_write(result, out, (int32_t)sizeof out) != (int32_t)sizeof out) {
            return SH_EXIT_IO;
        }
    }
    sh_close(in);
    sh_close(result);
    return SH_EXIT_OK;
}
