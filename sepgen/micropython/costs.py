"""What each MicroPython backend of a model costs on an emulated Cortex-M core, beside the bare-metal C.

Per backend: the ``.mpy`` bytes (flash), the heap its import keeps (imported from a flash file system, which
copies, and from ROMFS, which leaves bytecode and constants in flash), the bytes one ``invoke`` allocates and
the instructions one ``invoke`` executes (QEMU ``-icount``; :func:`sepgen.micropython.qemu.instructions`).
The bare-metal row is sepgen's own firmware running the same C (:mod:`sepgen.cortexm`).  Every measured run
is also checked byte for byte against the simulator: a cost is only reported for a module that is right.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import codegen
from ..ir import Graph
from ..targets import default_schedule
from .qemu import Board, backend_files, board, instructions, run_module
from .run import MicroPythonFailed, compare_outputs

#: The kernels a natmod for each board is built with: the DSP variants need Armv7E-M (not the M3); an
#: armv7emdp natmod is compiled for the M7, so the M55 runs the M7's kernels (no Helium).
KERNEL_TARGET = {"MPS2_AN385": "host", "MPS2_AN500": "cortex-m7", "MPS3_AN547": "cortex-m7"}
#: The bare-metal core of each board in sepgen.cortexm (none for the M3).
BARE_METAL = {"MPS2_AN385": None, "MPS2_AN500": "cortex-m7", "MPS3_AN547": "cortex-m55"}


@dataclass(frozen=True)
class Cost:
    backend: str
    flash_bytes: int  # the .mpy file(s); bare metal: the model's code + weights in the linked ELF
    heap_import_fs: int | None  # heap kept by the import from a flash file system (bare metal: None)
    heap_import_romfs: int | None  # heap kept by the import from ROMFS (bare metal: None)
    heap_invoke: int | None  # bytes allocated by one invoke (bare metal: None; its arena is static RAM)
    static_ram: int | None  # bare metal: the arena; MicroPython backends: None (their buffers are in the heap)
    instructions: int  # executed instructions of one invoke on the first input


def measure(graph: Graph, prefix: str, target: str, inputs: np.ndarray, c_files: dict[str, str] | None = None,
            src: str | Path | None = None, plain: bool = False) -> list[Cost]:
    """The cost table of ``target`` (a :data:`sepgen.micropython.qemu.TARGETS` name) for ``c_files`` (default:
    the board's KERNEL_TARGET, rendered with ``generate``'s default schedule); ``plain`` adds the .py module
    without its viper loops (slow: minutes for a KWS-sized model)."""
    b = board(target, src)
    kernels = KERNEL_TARGET[b.board]  # without c_files: the C that 'generate --target' writes (its default schedule)
    c_files = dict(c_files or codegen.render(graph, prefix, kernels, default_schedule(kernels)))
    rows = _bare_metal(graph, prefix, b, c_files, inputs)
    for name, files in backend_files(graph, prefix, b, c_files, src).items():
        if name.endswith("(plain)") and not plain:
            continue
        runs = [run_module(b, files, prefix, inputs[:1], copy=copy, src=src) for copy in (True, False)]
        for run in runs:
            result = compare_outputs(graph, inputs[:1], run.outputs)
            if not result.ok:
                raise MicroPythonFailed(f"{name} on {target}: {result.mismatch}")
        rows.append(Cost(name, sum(len(v) for v in files.values()), runs[0].heap_import, runs[1].heap_import,
                         runs[0].heap_invoke, None, instructions(runs[0])))
    return rows


def _bare_metal(graph: Graph, prefix: str, b: Board, c_files: dict[str, str], inputs: np.ndarray) -> list[Cost]:
    core = BARE_METAL[b.board]
    if core is None:
        return []
    from ..cortexm import profile, sizes

    s = sizes(graph, core, prefix, c_files)
    p = profile(graph, core, prefix, c_files, inputs[:1])
    return [Cost(f"bare-metal C ({core})", s.flash, None, None, None, s.arena, p.total)]


def format_costs(rows: list[Cost], target: str) -> str:
    """A text table; says what each column measures."""
    def n(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    head = ("backend", "flash B", "heap import (fs)", "heap import (ROMFS)", "heap per invoke", "static RAM",
            "instructions")
    body = [(r.backend, n(r.flash_bytes), n(r.heap_import_fs), n(r.heap_import_romfs), n(r.heap_invoke),
             n(r.static_ram), n(r.instructions)) for r in rows]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [f"MicroPython on {target} (QEMU): .mpy bytes, heap kept by the import, bytes allocated per invoke, "
             "executed instructions per invoke (not cycles)"]
    for k, row in enumerate([head, *body]):
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def costs_to_json(rows: list[Cost], target: str) -> dict:
    """``{"target", "unit": "executed instructions", "backends": [{"backend", "flash_bytes", "heap_import_fs",
    "heap_import_romfs", "heap_invoke", "static_ram", "instructions"}]}``."""
    return {"target": target, "unit": "executed instructions", "backends": [asdict(r) for r in rows]}
