"""Cortex-M targets (QEMU): the names the command line and scripts use, re-exported from :mod:`sepgen.cortexm`.

:func:`verify_target` (byte-for-byte check on the target), :func:`profile` / :func:`format_profile`
(executed instructions per layer), :func:`sizes` / :func:`format_sizes` (code, weights and arena of the
linked ELF) and :data:`TARGETS`.  The implementation is split by responsibility in ``sepgen/cortexm/``.
"""

from .cortexm import (BoardTooSmall, CROSS_COMPILER, QEMU, TARGETS, LayerProfile, Profile, Sizes, Target, build, format_profile,
                      format_sizes, get_target, profile, profile_to_json, run_target, sizes,
                      verify_target)

__all__ = ["BoardTooSmall", "CROSS_COMPILER", "QEMU", "TARGETS", "LayerProfile", "Profile", "Sizes", "Target", "build",
           "format_profile", "format_sizes", "get_target", "profile", "profile_to_json", "run_target", "sizes", "verify_target"]
