"""``sepgen report --board NAME``: does the model fit the board, and how long might one inference take.

Flash needed = code + constants.  Code is measured when ``arm-none-eabi-gcc`` is there (``<prefix>.c``
compiled for the board's core, :mod:`sepgen.code_size`; constants then are the object's ``.rodata`` +
``.data``), else estimated (labelled) with the budget's exact constant bytes.  RAM needed = the static
arena + the caller's input and output buffers (the stack is not counted).  A verdict per resource and
for both, with the bytes and percentage left.

Latency is always an *estimate*: executed instructions / the board's clock, at one instruction per
cycle.  The instructions are measured (``sepgen profile``: QEMU ``-icount``) when the board's core is
one QEMU runs (sepgen.cortexm.targets), the model fits that QEMU board and the tools are there, else estimated from the MACs and the measured
instructions per MAC of sepgen's kernels (:mod:`sepgen.kernel_costs`).  Units are in the field names.
"""

from __future__ import annotations

from typing import Any

from . import code_size, codegen, kernel_costs, targets
from .boards import Board
from .budget import Budget
from .ir import Graph
from .schedule import schedule as make_schedule
from .toolchain import ToolchainError


def render_target(board: Board) -> str:
    """The ``generate --target`` for the board's core (``portable``: the reference C for a core sepgen has no target
    for)."""
    return board.core if board.core in targets.TARGETS else "portable"


def _kernels(files: dict[str, str] | None, prefix: str) -> str:
    """``target`` if the C uses kernel variants (DSP/MVE feature guards), else ``portable`` (no C: ``target``,
    as ``generate --target <core>`` would write)."""
    if files is None:
        return "target"
    c = files.get(f"{prefix}.c", "")
    return "target" if "__ARM_FEATURE_DSP" in c or "__ARM_FEATURE_MVE" in c else "portable"


def _headroom(needed: int, available: int) -> dict[str, Any]:
    left = available - needed
    return {"available_bytes": available, "headroom_bytes": left,
            "headroom_percent": round(100 * left / available, 1) if available else 0.0}


def _can_profile(core: str) -> str | None:
    """None if ``sepgen profile`` can run on ``core`` here, else why not."""
    from .cortexm.targets import CROSS_COMPILER, CROSS_PACKAGES, QEMU, QEMU_PACKAGE, TARGETS
    from .toolchain import find_tool

    if core not in TARGETS:
        return f"QEMU runs no {core} ({', '.join(TARGETS)} only)"
    try:
        find_tool(CROSS_COMPILER, CROSS_PACKAGES)
        find_tool(QEMU, QEMU_PACKAGE)
    except ToolchainError as exc:
        return str(exc)
    return None


def _variants_hint(board: Board, graph: Graph, prefix: str, files: dict[str, str], schedule: str,
                   reuse_input: bool, given: bool) -> str:
    """How to get the core's kernel variants when ``files`` run portable kernels on a core that has some."""
    if _kernels(files, prefix) != "portable" or board.core not in kernel_costs.HAS_VARIANTS:
        return ""
    if given and _kernels(codegen.render(graph, prefix, board.core, schedule, reuse_input), prefix) == "target":
        return f"; 'generate --target {board.core}' would use this core's kernel variants"
    return ""


def _latency(board: Board, graph: Graph, prefix: str, files: dict[str, str] | None, schedule: str,
             reuse_input: bool, measure: bool, given: bool) -> dict[str, Any]:
    """The ``latency`` object; ``given``: ``files`` are the caller's (a DIR), not rendered here."""
    if files is None:
        why_not = "a float model: pass --calibration to generate C that can be profiled"
    else:
        why_not = _can_profile(board.core) if measure else "not measured (--estimate)"
    p = None
    if why_not is None:
        from .cortexm.build import BoardTooSmall
        from .cortexm.profiling import profile

        try:
            p = profile(graph, board.core, prefix, files)
        except BoardTooSmall as exc:  # e.g. the 16 KiB QEMU board of the Cortex-M0+: estimate instead
            why_not = str(exc)
    if p is not None:
        instructions, basis = p.total, "measured"
        kernels = "the core's kernel variants" if _kernels(files, prefix) == "target" else "portable kernels"
        how = (f"{instructions:,} executed instructions of {prefix}_invoke ({kernels}) measured by 'sepgen profile' "
               f"on {p.target} (QEMU {p.board}, one input)")
    else:
        s = make_schedule(graph, schedule, reuse_input)
        streamed = frozenset(i for st in s.streams.values() for i in st.layers)
        est = kernel_costs.estimate(graph, board.core, _kernels(files, prefix), streamed)
        instructions, basis = est.instructions, "estimated"
        how = f"~{instructions:,} instructions estimated from {est.basis}"
    hint = _variants_hint(board, graph, prefix, files, schedule, reuse_input, given) if files is not None else ""
    not_profiled = "" if why_not is None or not measure else f"; not profiled: {why_not}"
    ms = instructions / (board.clock_mhz * 1000)
    return {"estimate": True, "ms": float(f"{ms:.3g}"), "instructions": instructions, "instructions_basis": basis,
            "clock_mhz": board.clock_mhz,
            "how": f"{how}, at one instruction per cycle at {board.clock_mhz} MHz (real cycles differ: wait states, "
                   f"multi-cycle instructions, caches){not_profiled}{hint}"}


def board_report(board: Board, graph: Graph, b: Budget, files: dict[str, str] | None, schedule: str,
                 reuse_input: bool, measure: bool = True) -> dict[str, Any]:
    """The ``board`` object of ``report --json`` (docs/json-report.md).

    ``files``: the generated C (a DIR's), or None to render it for the board's core; ``measure``: build
    and run with the cross tools when they are there (False: estimates only).
    """
    prefix = b.prefix
    given = files is not None
    if files is None and graph.is_quantized:
        files = codegen.render(graph, prefix, render_target(board), schedule, reuse_input)
    computed = len(graph.computed_layers())
    code: dict[str, Any]
    if measure and files is not None and board.core.startswith("cortex-m") and code_size.available():
        sizes = code_size.object_sizes(files, prefix, board.core)
        code = {"code_bytes": sizes.code, "constants_bytes": sizes.constants, "code_basis": "measured",
                "code_how": f".text of {prefix}.c compiled with '{sizes.command}' (not linked); constants: its "
                            ".rodata + .data"}
    else:
        if not measure:
            why = "not measured (--estimate)"
        elif files is None:
            why = "a float model (pass --calibration to compile it)"
        elif board.core.startswith("cortex-m"):
            why = f"no Arm cross compiler for {board.core}"
        else:
            why = f"sepgen does not compile for {board.core}"
        code = {"code_bytes": computed * code_size.ESTIMATED_CODE_BYTES_PER_LAYER,
                "constants_bytes": b.totals.flash_bytes, "code_basis": "estimated",
                "code_how": f"estimate: {computed} computed layers x {code_size.ESTIMATED_CODE_BYTES_PER_LAYER} B "
                            f"(the most measured per layer on Cortex-M, -O2); {why}; constants: the budget's"}
    flash_needed = code["code_bytes"] + code["constants_bytes"]
    input_bytes = graph.tensors[graph.input].size
    output_bytes = graph.tensors[graph.output].size
    arena = b.totals.ram_bytes
    ram_needed = arena + input_bytes + output_bytes
    flash = {"needed_bytes": flash_needed, **code, **_headroom(flash_needed, board.flash_bytes),
             "fits": flash_needed <= board.flash_bytes}
    target_kernels = _kernels(files, prefix) == "target"
    stack = kernel_stack(graph, render_target(board), schedule, reuse_input) if target_kernels else []
    ram = {"needed_bytes": ram_needed, "arena_bytes": arena, "input_bytes": input_bytes, "output_bytes": output_bytes,
           **_headroom(ram_needed, board.ram_bytes), "largest_region_bytes": board.largest_ram_region_bytes,
           "fits": ram_needed <= board.ram_bytes and arena <= board.largest_ram_region_bytes,
           "kernel_stack_bytes": max((row["bytes"] for row in stack), default=0), "kernel_stack": stack}
    return {"name": board.name, "chip": board.chip, "core": board.core, "clock_mhz": board.clock_mhz,
            "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes, "source": board.source,
            "note": board.note, "fits": flash["fits"] and ram["fits"], "flash": flash, "ram": ram,
            "latency": _latency(board, graph, prefix, files, schedule, reuse_input, measure, given)}


def kernel_stack(graph: Graph, target: str, schedule: str = "layer", reuse_input: bool = False) -> list[dict[str, Any]]:
    """[{"name", "bytes"}]: the stack staging buffers of the layers whose kernel variant for ``target`` declares
    some (:meth:`sepgen.ir.Layer.stack_bytes`): a layer inside a chain that ``schedule`` streams runs its row
    kernel, the others their whole-tensor kernel.  One kernel call runs at a time (a streamed chain calls its
    row kernels in turn), so the largest is what the stack needs on top of the caller's.  Empty for a float
    model."""
    if not graph.is_quantized:
        return []
    env = codegen.environment()
    streamed = {i for st in make_schedule(graph, schedule, reuse_input).streams.values() for i in st.layers}
    rows = []
    for index, layer in graph.computed_layers():
        if index in streamed:
            variant, _ = codegen.row_kernel_variant(env, layer, target, graph)
        else:
            variant, _ = codegen.kernel_variant(env, layer, target, graph)
        n = layer.stack_bytes(graph, variant, rows=index in streamed)
        if n:
            rows.append({"name": layer.name, "bytes": int(n)})
    return rows


def _n(v: int) -> str:
    return f"{v:,}"


def _left(part: dict[str, Any]) -> str:
    if part["headroom_bytes"] >= 0:
        return f"{_n(part['headroom_bytes'])} bytes ({part['headroom_percent']:.1f} %) left"
    return f"{_n(-part['headroom_bytes'])} bytes too many"


def to_text(r: dict[str, Any]) -> str:
    """The board verdict as text: a headline, flash, RAM, latency estimate, and where the figures come from."""
    f, m, lat = r["flash"], r["ram"], r["latency"]
    kib = lambda v: f"{v // 1024:,} KiB"  # noqa: E731
    head = (f"Board {r['name']} ({r['chip']}, {r['core']} at {r['clock_mhz']} MHz, {kib(r['flash_bytes'])} flash, "
            f"{kib(r['ram_bytes'])} RAM): {'FITS' if r['fits'] else 'DOES NOT FIT'}")
    code = f"code {_n(f['code_bytes'])} {'measured' if f['code_basis'] == 'measured' else 'ESTIMATED'}"
    region = ("" if m["arena_bytes"] <= m["largest_region_bytes"] else
              f"; the arena exceeds the largest RAM region ({_n(m['largest_region_bytes'])} bytes)")
    lines = [head,
             f"  flash {'ok' if f['fits'] else 'NO'}: {_n(f['needed_bytes'])} of {_n(f['available_bytes'])} bytes "
             f"({code} + constants {_n(f['constants_bytes'])}); {_left(f)}",
             f"    code: {f['code_how']}",
             f"  RAM {'ok' if m['fits'] else 'NO'}: {_n(m['needed_bytes'])} of {_n(m['available_bytes'])} bytes (arena "
             f"{_n(m['arena_bytes'])} + input {_n(m['input_bytes'])} + output {_n(m['output_bytes'])}; stack not "
             f"counted); {_left(m)}{region}",
             *([f"  stack: the kernels' staging buffers take up to {_n(m['kernel_stack_bytes'])} bytes ("
                f"{max(m['kernel_stack'], key=lambda row: row['bytes'])['name']}; one layer at a time), on top of the "
                "caller's stack"] if m["kernel_stack"] else []),
             f"  latency: ~{lat['ms']:g} ms per inference, an ESTIMATE ({lat['instructions_basis']} instructions)",
             f"    {lat['how']}",
             f"  figures: {r['source']}" + (f"; note: {r['note']}" if r["note"] else "")]
    return "\n".join(lines) + "\n"
