/* sepgen bare-metal firmware: vector table, reset handler, fault handler, SysTick.
 *
 * Reset: enable the FPU (and MVE on Cortex-M55) before any compiled code may use it, copy .data
 * from flash, zero .bss, run main() and leave through semihosting with main's return value.
 * Any fault or unexpected exception prints its number, CFSR/HFSR and the faulting PC, then exits
 * with SH_EXIT_FAULT, so a crashing model fails loudly instead of hanging the emulator. */
#include <stdint.h>

#include "sepgen_firmware.h"

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYSTICK_MAX 0x00FFFFFFu

extern uint32_t __data_load__[], __data_start__[], __data_end__[], __bss_start__[], __bss_end__[];
extern uint32_t __stack_top[];

int main(void);
void Reset_Handler(void) __attribute__((noreturn));
void Fault_Handler(void);
void SysTick_Handler(void);
void sepgen_fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((noreturn, used));

typedef union {
    void (*handler)(void);
    const void *stack;
} vector_entry;

/* The first 16 entries (system exceptions); no peripheral interrupt is ever enabled. */
__attribute__((section(".vectors"), used)) static const vector_entry sepgen_vectors[16] = {
    { .stack = __stack_top },
    { .handler = Reset_Handler },
    { .handler = Fault_Handler }, /* NMI */
    { .handler = Fault_Handler }, /* HardFault */
    { .handler = Fault_Handler }, /* MemManage */
    { .handler = Fault_Handler }, /* BusFault */
    { .handler = Fault_Handler }, /* UsageFault */
    { .handler = Fault_Handler }, /* SecureFault (Armv8-M) */
    { .handler = 0 },
    { .handler = 0 },
    { .handler = 0 },
    { .handler = Fault_Handler }, /* SVCall */
    { .handler = Fault_Handler }, /* DebugMonitor */
    { .handler = 0 },
    { .handler = Fault_Handler }, /* PendSV */
    { .handler = SysTick_Handler },
};

void Reset_Handler(void)
{
    uint32_t *src = __data_load__;
    uint32_t *dst;
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11 full access: FPU (and MVE); cores without them (M0+, M3) skip this */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (dst = __data_start__; dst < __data_end__; ++dst, ++src) {
        *dst = *src;
    }
    for (dst = __bss_start__; dst < __bss_end__; ++dst) {
        *dst = 0;
    }
    sh_exit(main());
}

/* Hand the exception stack frame (MSP or PSP, from EXC_RETURN bit 2) to the C reporter. */
__attribute__((naked)) void Fault_Handler(void)
{
    /* ARMv6-M instructions only (no IT blocks, no immediate TST), so that every core runs it. */
    __asm__ volatile(
        "mov r1, lr\n\t"
        "movs r0, #4\n\t"
        "tst r1, r0\n\t"
        "bne 1f\n\t"
        "mrs r0, msp\n\t"
        "b 2f\n"
        "1:\n\t"
        "mrs r0, psp\n"
        "2:\n\t"
        "ldr r2, =sepgen_fault_report\n\t"
        "bx r2\n\t"
        ".ltorg\n\t");
}

static void put_hex(char *out, uint32_t value)
{
    int i;
    for (i = 7; i >= 0; --i) {
        out[i] = "0123456789abcdef"[value & 0xFu];
        value >>= 4;
    }
}

void sepgen_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    /* "sepgen firmware: exception 0x........ CFSR 0x........ HFSR 0x........ PC 0x........\n" */
    static char message[] = "sepgen firmware: exception 0x________ CFSR 0x________ HFSR 0x________ PC 0x________\n";
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    put_hex(message + 29, ipsr & 0x1FFu);
    put_hex(message + 45, SCB_CFSR);
    put_hex(message + 61, SCB_HFSR);
    (void)exc_return;
    put_hex(message + 75, frame[6]); /* stacked PC */
    sh_puts(message);
    sh_exit(SH_EXIT_FAULT);
}

static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void sepgen_systick_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYSTICK_MAX;
    SYST_CVR = 0;
    systick_wraps = 0;
    SYST_CSR = 0x7u; /* ENABLE | TICKINT | CLKSOURCE = processor clock */
}

uint64_t sepgen_systick_now(void)
{
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return ((uint64_t)wraps << 24) + (SYSTICK_MAX - value);
}
