"""The Cortex-M cores sepgen runs on (QEMU boards, compiler flags, clocks) and the firmware sources."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .. import codegen, toolchain

CROSS_COMPILER = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
QEMU_PACKAGE = "qemu-system-arm"

# -pedantic C99 like the host build; per-symbol sections so that the link drops what is unused.
CROSS_FLAGS = toolchain.WARNINGS + ("-O2", "-mthumb", "-ffunction-sections", "-fdata-sections",
                                    "--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections", "-L", ".")
FIRMWARE_FILES = ("sepgen_firmware.h", "sepgen_semihost.h", "sepgen_semihost.c", "sepgen_startup.c",
                  "sepgen_sections.ld")
ICOUNT_SHIFT = 7  # virtual ns per instruction = 2^7
PROFILE_DEFINE = "SEPGEN_PROFILE"


@dataclass(frozen=True)
class Target:
    name: str
    board: str  # QEMU -M
    cpu_flags: tuple[str, ...]
    sysclk_hz: int  # the board's processor clock, which drives SysTick in QEMU
    #: memory map (``firmware/<name>.ld``) of size-only builds, when the QEMU board's is too small to be
    #: representative (the microbit's 16 KiB of RAM stands in for an RP2040's 264 KiB); default: the board's.
    size_map: str | None = None

    @property
    def memory_maps(self) -> tuple[str, ...]:
        """The linker scripts of this target: the QEMU board's, then the size builds' if different."""
        return (self.board,) if self.size_map in (None, self.board) else (self.board, self.size_map)

    @property
    def ticks_per_instruction(self) -> Fraction:
        """SysTick ticks per executed instruction under -icount shift=ICOUNT_SHIFT (e.g. 3.2 at 25 MHz)."""
        return Fraction(self.sysclk_hz * (1 << ICOUNT_SHIFT), 10**9)


TARGETS: dict[str, Target] = {
    # QEMU has no Cortex-M0+ board: the microbit's Cortex-M0 (nRF51) executes the same ARMv6-M instructions.
    "cortex-m0plus": Target("cortex-m0plus", "microbit", ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"), 16_000_000,
                            size_map="rp2040"),
    "cortex-m3": Target("cortex-m3", "mps2-an385", ("-mcpu=cortex-m3", "-mfloat-abi=soft"), 25_000_000),
    "cortex-m4": Target("cortex-m4", "mps2-an386", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                        25_000_000),
    "cortex-m7": Target("cortex-m7", "mps2-an500", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                        25_000_000),
    "cortex-m33": Target("cortex-m33", "mps2-an505", ("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
                         20_000_000),
    "cortex-m55": Target("cortex-m55", "mps3-an547", ("-mcpu=cortex-m55", "-mfloat-abi=hard"), 32_000_000),
}


def get_target(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown target '{target}' (choose from {', '.join(TARGETS)})") from None


def firmware_dir() -> Path:
    """``sepgen/firmware_src`` in an installed wheel, else the repository's ``firmware/``."""
    return codegen.data_dir("firmware_src", "firmware", "sepgen_startup.c")


def firmware_sources(target: Target) -> dict[str, str]:
    """Startup, semihosting and the board's linker script, as {filename: text}."""
    root = firmware_dir()
    return {name: (root / name).read_text()
            for name in (*FIRMWARE_FILES, *(f"{board}.ld" for board in target.memory_maps))}
