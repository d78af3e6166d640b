/* sepgen bare-metal firmware: Arm semihosting (host file I/O and exit codes under QEMU or a debugger).
 *
 * Semihosting is a breakpoint ("bkpt 0xAB" on M-profile) with an operation number in r0 and a
 * pointer to an argument block in r1; the host (QEMU -semihosting-config enable=on,target=native)
 * performs the operation and returns the result in r0.  Without a host attached the bkpt faults:
 * these functions are for test firmware only. */
#ifndef SEPGEN_SEMIHOST_H
#define SEPGEN_SEMIHOST_H

#include <stdint.h>

/* Modes of SYS_OPEN (index into fopen's "r","rb","r+","r+b","w","wb",...). */
#define SH_MODE_RB 1
#define SH_MODE_WB 5

/* Exit codes of the test firmware (the QEMU process exits with them). */
#define SH_EXIT_OK 0
#define SH_EXIT_IO 1       /* a semihosting file operation failed */
#define SH_EXIT_INVOKE 2   /* <prefix>_invoke returned non-zero or a trace record was malformed */
#define SH_EXIT_FAULT 3    /* HardFault or another unexpected exception */

int sh_open(const char *path, int mode);
int sh_close(int handle);
/* Both return the number of bytes transferred (unlike the raw call, which returns bytes NOT transferred). */
int32_t sh_read(int handle, void *buffer, int32_t size);
int32_t sh_write(int handle, const void *buffer, int32_t size);
/* Writes a NUL-terminated string to the host's console (QEMU's stdout). */
void sh_puts(const char *text);
/* Ends the emulation; the host process exits with `code` (SYS_EXIT_EXTENDED, ADP_Stopped_ApplicationExit). */
void sh_exit(int code) __attribute__((noreturn));

#endif /* SEPGEN_SEMIHOST_H */
