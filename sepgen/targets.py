"""Code-generation targets: which kernel variant renders each op.

Every op has a portable C99 kernel (``templates/layers/<op>.c.j2``), the reference that is always
there; an op may add variants beside it (``layers/<op>.<variant>.c.j2``, listed in the op's
``kernels``).  A target names the variants it can use, best first; codegen takes, per op, the first
variant the op has, else the portable kernel.  Variants for an architecture extension guard
themselves with its feature macro (``__ARM_FEATURE_DSP``, ``__ARM_FEATURE_MVE``) and keep the
portable code in the ``#else`` branch, so generated C still compiles everywhere.  Inside a streamed chain a
layer runs a row kernel; an op names its row kernels per variant (``row_kernels``, usually the whole-tensor
variant's template, which renders the row kernel when ``ctx.rows`` is set) and the target's first variant the
layer can use that has one is taken (:func:`sepgen.codegen.row_kernel_variant`), else ``layers/<op>.rows.c.j2``.
The ``host`` variant is plain C99 as well (no intrinsics), written so that compilers auto-vectorize it;
the ``portable`` target renders the reference kernels only.
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


def variants(target: str) -> tuple[str, ...]:
    """The kernel variants of ``target``, best first, ending with the portable reference."""
    if target not in TARGET_VARIANTS:
        raise UserError(f"unknown target '{target}' (supported: {', '.join(TARGETS)})")
    return TARGET_VARIANTS[target] + (PORTABLE,)


def default_schedule(target: str) -> str:
    """The schedule ``generate`` uses when ``--schedule`` is not given: ``auto`` (the smallest arena) on every
    target.  Streamed convolutions run the row kernels of the target's variants (the same templates as the
    whole-tensor kernels): streaming costs 2-6 % more instructions with the portable and Helium kernels, and on
    the DSP cores ~3 % on MobileNetV1-0.25 and ~8-9 % on DS-CNN, whose depthwise row kernel reads its
    per-channel constants from flash (~18 B more per 3x3 channel than the layer schedule); tests/test_cortexm.py
    pins the measurements (README, "RAM: streaming").  ``--schedule layer`` is the fastest where its arena fits."""
    variants(target)  # an unknown target: one clear error
    return "auto"
