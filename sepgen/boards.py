"""Board presets for ``sepgen report --board``: core, clock, flash and RAM of common boards.

Data only (the verdict is :mod:`sepgen.board_report`).  Units are in the field names: MHz, KiB
(1 KiB = 1,024 bytes; datasheets' "KB"/"kB" of memory are KiB).  ``source`` names the document each
figure is taken from.  ``largest_ram_region_kib`` is the largest contiguous RAM region: the model's
static arena is one array and must fit in one region.  Flash is the memory code and constants are
linked into (on-chip flash, MRAM, or the board's QSPI flash chip for execute-in-place parts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Board:
    """One board (or chip) preset; see the module docstring for units."""

    name: str
    chip: str
    core: str  # a `generate --target` name (cortex-m...) or another core (xtensa-lx7)
    clock_mhz: int  # the core's maximum clock
    flash_kib: int
    ram_kib: int  # on-chip SRAM the application can use, all regions
    largest_ram_region_kib: int
    source: str  # where the figures come from
    aliases: tuple[str, ...] = ()
    note: str = ""  # what the figures leave out

    @property
    def flash_bytes(self) -> int:
        return self.flash_kib * 1024

    @property
    def ram_bytes(self) -> int:
        return self.ram_kib * 1024

    @property
    def largest_ram_region_bytes(self) -> int:
        return self.largest_ram_region_kib * 1024


BOARDS: tuple[Board, ...] = (
    Board("nucleo-f446re", "STM32F446RE", "cortex-m4", 180, 512, 128, 128,
          "ST DS10693 (STM32F446xC/E datasheet), features: Cortex-M4 with FPU up to 180 MHz, 512 Kbytes of "
          "Flash, 128 Kbytes of SRAM (SRAM1 112 + SRAM2 16, contiguous)",
          aliases=("stm32f4", "stm32f446re")),
    Board("nucleo-h743zi", "STM32H743ZI", "cortex-m7", 480, 2048, 1024, 512,
          "ST DS12110 (STM32H742xI/G, STM32H743xI/G datasheet), features: Cortex-M7 up to 480 MHz, 2 Mbytes "
          "of Flash, up to 1 Mbyte of RAM (192 Kbytes TCM, 864 Kbytes user SRAM; the largest region is the "
          "512 Kbytes AXI SRAM)",
          aliases=("stm32h7", "stm32h743zi"), note="RAM is split over several regions (DTCM 128 KiB is the fastest)"),
    Board("nrf52840", "nRF52840", "cortex-m4", 64, 1024, 256, 256,
          "Nordic nRF52840 Product Specification, key features: 64 MHz Arm Cortex-M4 with FPU, 1 MB "
          "flash, 256 kB RAM",
          aliases=("nrf52840-dk",), note="a SoftDevice (Bluetooth stack) takes part of the flash and RAM"),
    Board("arduino-nano-33-ble", "nRF52840", "cortex-m4", 64, 1024, 256, 256,
          "Arduino Nano 33 BLE datasheet (ABX00030): nRF52840, 64 MHz Cortex-M4F, 1 MB flash, 256 KB SRAM",
          note="the Arduino bootloader and Mbed OS take part of the flash and RAM"),
    Board("pico", "RP2040", "cortex-m0plus", 133, 2048, 264, 264,
          "Raspberry Pi RP2040 datasheet: dual Cortex-M0+ at 133 MHz, 264 kB on-chip SRAM (one "
          "contiguous address range); Raspberry Pi Pico datasheet: 2 MB QSPI flash",
          aliases=("rp2040", "raspberry-pi-pico"), note="code runs from QSPI flash through a 16 kB cache (XIP)"),
    Board("pico2", "RP2350", "cortex-m33", 150, 4096, 520, 520,
          "Raspberry Pi RP2350 datasheet: dual Cortex-M33 at 150 MHz, 520 kB on-chip SRAM (one "
          "contiguous address range); Raspberry Pi Pico 2 datasheet: 4 MB QSPI flash",
          aliases=("rp2350", "raspberry-pi-pico2"), note="code runs from QSPI flash through a 16 kB cache (XIP)"),
    Board("esp32-s3-devkitc-1", "ESP32-S3 (module ESP32-S3-WROOM-1-N8)", "xtensa-lx7", 240, 8192, 512, 512,
          "Espressif ESP32-S3 Series Datasheet: Xtensa dual-core 32-bit LX7 up to 240 MHz, 512 KB SRAM; "
          "ESP32-S3-DevKitC-1 user guide: ESP32-S3-WROOM-1-N8, 8 MB flash",
          aliases=("esp32-s3", "esp32s3"),
          note="ESP-IDF, Wi-Fi/Bluetooth and the caches use part of the 512 KB SRAM; not an Arm core"),
    Board("alif-e7-hp", "Alif Ensemble E7 (RTSS-HP)", "cortex-m55", 400, 5632, 13824, 4096,
          "Alif Ensemble E7 datasheet: Cortex-M55 high-performance core up to 400 MHz, 5.5 MB MRAM, 13.5 MB "
          "SRAM; Alif white paper AWPR0003 (RAM regions): SRAM0 4,096 KB is the largest bank, the HP core's "
          "DTCM (SRAM3) 1,024 KB",
          aliases=("ensemble-e7", "alif-e7"), note="the HP core's fastest RAM is its 1,024 KiB DTCM"),
)

#: ``generic-<core>``: a board of your own, sized with ``--flash-kib``, ``--ram-kib`` and ``--clock-mhz``.
GENERIC_CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
GENERIC = tuple(f"generic-{core}" for core in GENERIC_CORES)

_BY_NAME: dict[str, Board] = {name: b for b in BOARDS for name in (b.name, *b.aliases)}


def supported() -> str:
    """The board names for messages and help: ``name (alias, ...)`` separated by commas, then the generic ones."""
    return ", ".join([b.name + (f" ({', '.join(b.aliases)})" if b.aliases else "") for b in BOARDS] + list(GENERIC))


def get_board(name: str, flash_kib: int | None = None, ram_kib: int | None = None,
              clock_mhz: int | None = None) -> Board:
    """The preset called ``name`` (or one of its aliases, case-insensitive), with any of flash, RAM and clock
    replaced; ``generic-<core>`` needs all three.  A UserError listing the boards for an unknown name."""
    key = name.strip().lower()
    if key in GENERIC:
        missing = [opt for opt, v in (("--flash-kib", flash_kib), ("--ram-kib", ram_kib), ("--clock-mhz", clock_mhz))
                   if v is None]
        if missing:
            raise UserError(f"board '{key}' is generic: give its {', '.join(missing)}")
        core = key.removeprefix("generic-")
        assert flash_kib is not None and ram_kib is not None and clock_mhz is not None
        return Board(key, f"a {core} board", core, clock_mhz, flash_kib, ram_kib, ram_kib,
                     "the sizes and clock given on the command line")
    board = _BY_NAME.get(key)
    if board is None:
        raise UserError(f"unknown board '{name}' (supported: {supported()})")
    changes = {k: v for k, v in (("flash_kib", flash_kib), ("ram_kib", ram_kib), ("clock_mhz", clock_mhz))
               if v is not None}
    if not changes:
        return board
    largest = min(board.largest_ram_region_kib, changes.get("ram_kib", board.ram_kib))
    given = ", ".join(f"{k} {v}" for k, v in changes.items())
    return dataclasses.replace(board, **changes, largest_ram_region_kib=largest,
                               source=f"{board.source}; given on the command line: {given}")
