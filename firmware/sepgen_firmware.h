/* sepgen bare-metal firmware for QEMU's Cortex-M boards: what startup provides to a harness. */
#ifndef SEPGEN_FIRMWARE_H
#define SEPGEN_FIRMWARE_H

#include <stdint.h>

#include "sepgen_semihost.h"

/* Starts SysTick on the processor clock, counting down from 2^24 - 1; every wrap is counted by
 * SysTick_Handler so that sepgen_systick_now() is a 64-bit tick count.  Under QEMU with
 * -icount shift=S,align=off,sleep=off, virtual time advances 2^S ns per executed instruction, so
 * tick differences are exact, deterministic instruction counts (scaled by the clock: see sepgen/cortexm/profiling.py). */
void sepgen_systick_start(void);
uint64_t sepgen_systick_now(void);

#endif /* SEPGEN_FIRMWARE_H */
