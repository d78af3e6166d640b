/* sepgen bare-metal firmware: Arm semihosting calls (see sepgen_semihost.h). */
#include "sepgen_semihost.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int32_t semihost_call(int32_t operation, const void *argument)
{
    register int32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int32_t length(const char *text)
{
    int32_t n = 0;
    while (text[n] != '\0') {
        ++n;
    }
    return n;
}

int sh_open(const char *path, int mode)
{
    uint32_t block[3];
    block[0] = (uint32_t)(uintptr_t)path;
    block[1] = (uint32_t)mode;
    block[2] = (uint32_t)length(path);
    return (int)semihost_call(SYS_OPEN, block);
}

int sh_close(int handle)
{
    uint32_t block[1];
    block[0] = (uint32_t)handle;
    return (int)semihost_call(SYS_CLOSE, block);
}

int32_t sh_read(int handle, void *buffer, int32_t size)
{
    uint32_t block[3];
    block[0] = (uint32_t)handle;
    block[1] = (uint32_t)(uintptr_t)buffer;
    block[2] = (uint32_t)size;
    return size - semihost_call(SYS_READ, block);
}

int32_t sh_write(int handle, const void *buffer, int32_t size)
{
    uint32_t block[3];
    block[0] = (uint32_t)handle;
    block[1] = (uint32_t)(uintptr_t)buffer;
    block[2] = (uint32_t)size;
    return size - semihost_call(SYS_WRITE, block);
}

void sh_puts(const char *text)
{
    (void)semihost_call(SYS_WRITE0, text);
}

void sh_exit(int code)
{
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    (void)semihost_call(SYS_EXIT_EXTENDED, block);
    /* A host without SYS_EXIT_EXTENDED: plain SYS_EXIT reports success or failure only. */
    (void)semihost_call(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT : 0x20023));
    for (;;) {
    }
}
