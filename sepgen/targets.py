"""Code-generation targets: which kernel variant renders each op.

Every op has a portable C99 kernel (``templates/layers/<op>.c.j2``), the reference that is always
there; an op may add variants beside it (``layers/<op>.<variant>.c.j2``, listed in the op's
``kernels``).  A target names the variants it can use, best first; codegen takes, per op, the first
variant the op has, else the portable kernel.  Variants for an architecture extension guard
themselves with its feature macro (``__ARM_FEATURE_DSP``, ``__ARM_FEATURE_MVE``) and keep the
portable code in the ``#else`` branch, so generated C still compiles everywhere.  The ``host`` variant
is plain C99 as well (no intrinsics), written so that compilers auto-vectorize it; the ``portable``
target renders the reference kernels only.
"""

from __future__ import annotations

from .errors import UserError

PORTABLE = "portable"

#: target -> kernel variants it can use, best first (portable is implied last).
TARGET_VARIANTS: dict[str, tuple[str, ...]] = {
    "host": ("host",),
    "portable": (),
    "cortex-m0plus": (),
    "cortex-m3": (),
    "cortex-m4": ("cortexm_dsp",),
    "cortex-m7": ("cortexm_dsp",),
    "cortex-m33": ("cortexm_dsp",),
    "cortex-m55": ("mve", "cortexm_dsp"),
}
TARGETS = tuple(TARGET_VARIANTS)
#: Variants whose streamed layers have row kernels of their own (``layers/<op>.rows.<variant>.c.j2``).
ROW_KERNEL_VARIANTS = (PORTABLE, "host")


def variants(target: str) -> tuple[str, ...]:
    """The kernel variants of ``target``, best first, ending with the portable reference."""
    if target not in TARGET_VARIANTS:
        raise UserError(f"unknown target '{target}' (supported: {', '.join(TARGETS)})")
    return TARGET_VARIANTS[target] + (PORTABLE,)


def default_schedule(target: str) -> str:
    """The schedule ``generate`` uses when ``--schedule`` is not given: ``auto`` (the smallest arena) where every
    kernel variant of the target also has row kernels (:data:`ROW_KERNEL_VARIANTS`: portable and host; streaming
    then costs a few % more instructions), ``layer`` where it has variants without: streamed layers run the
    portable row kernels, so streaming would give up the DSP/Helium kernels (on a Cortex-M4 the KWS model takes
    ~8x the instructions).  ``--schedule auto`` or ``stream`` trades that speed for RAM explicitly."""
    return "auto" if all(v in ROW_KERNEL_VARIANTS for v in variants(target)) else "layer"
