"""Cortex-M targets: cross-compile the generated C with sepgen's bare-metal harness and run it in QEMU.

* :mod:`.targets` -- the cores and QEMU boards (:data:`TARGETS`), the firmware sources.
* :mod:`.build` -- :func:`build` an ELF, :func:`run_elf` in QEMU, :func:`verify_target`: the same
  byte-for-byte check as the host (every computed layer, every input) on the target instruction set.
* :mod:`.profiling` -- :func:`profile`: executed *instructions* (not cycles) per layer, deterministic.
* :mod:`.footprint` -- :func:`sizes`: code, weights and arena of the model from the linked ELF.

The firmware (startup, semihosting, linker scripts) is hand-written C in ``firmware/``; the harness
is ``templates/harness/cortexm.c.j2``.  ``sepgen.firmware`` re-exports the names the command line uses.
"""

from .build import BoardTooSmall, build, run_elf, run_target, verify_target
from .footprint import Sizes, Symbol, format_sizes, section_sizes, sizes, symbols
from .profiling import LayerProfile, Profile, format_profile, profile, profile_to_json
from .targets import (CROSS_COMPILER, CROSS_FLAGS, CROSS_PACKAGES, ICOUNT_SHIFT, PROFILE_DEFINE, QEMU, QEMU_PACKAGE,
                      TARGETS, Target, firmware_dir, firmware_sources, get_target)

__all__ = ["BoardTooSmall", "CROSS_COMPILER", "CROSS_FLAGS", "CROSS_PACKAGES", "ICOUNT_SHIFT", "LayerProfile", "PROFILE_DEFINE",
           "Profile", "QEMU", "QEMU_PACKAGE", "Sizes", "Symbol", "TARGETS", "Target", "build", "firmware_dir",
           "firmware_sources", "format_profile", "format_sizes", "get_target", "profile", "profile_to_json", "run_elf", "run_target",
           "section_sizes", "sizes", "symbols", "verify_target"]
