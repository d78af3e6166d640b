"""Command line: a thin layer over :mod:`sepgen.api` (the README's "Command line" section is the contract).

User errors (:class:`sepgen.errors.UserError`) print one line on stderr and exit 2; a failed
verification exits 1; a failed external tool (:class:`sepgen.toolchain.ToolchainError`: a compiler,
QEMU, a MicroPython build) prints the tool's output and one closing line, exit 3; any other exception is
a bug: its traceback is kept, a line asks for a report, and the exit status is 1.

Size: ~400 lines on purpose: one argparse definition (help text on every option) and one thin function per
subcommand; the work is in the API modules.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from . import __version__, api, codegen, memory_report, output, targets
from .schedule import MODES
from .codegen import check_prefix
from .cortexm.targets import TARGETS as CORTEX_M_TARGETS
from .errors import UserError, one_line
from .frontends import check_model_path
from .ir import Graph
from .boards import BOARDS, get_board
from .layouts import LAYOUTS
from .quiet import set_verbose, spinner
from .toolchain import ToolchainError
from .micropython.sources import BACKENDS as MICROPYTHON_BACKENDS

#: Where `verify` can run the C: the host, or a Cortex-M core under QEMU (see firmware/README.md).
MICROPYTHON_QEMU = ("micropython-cortex-m3", "micropython-cortex-m7", "micropython-cortex-m55")
PROFILE_TARGETS = (*CORTEX_M_TARGETS, *MICROPYTHON_QEMU)
TARGETS = ("host", *CORTEX_M_TARGETS, "micropython", *MICROPYTHON_QEMU)
#: Model files that hold a float model, which needs --calibration to be quantized.
FLOAT_SUFFIXES = (".keras", ".h5", ".hdf5", ".npz")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..1000000")
    return value


def _prefix(text: str) -> str:
    try:
        return check_prefix(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in sepgen's one-line form (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"sepgen: error: {one_line(message, 500)} (see '{self.prog} --help')\n")


def _model_arg(parser: argparse.ArgumentParser, dir_ok: bool) -> None:
    what = "DIR made by 'sepgen generate', or " if dir_ok else ""
    parser.add_argument("model", metavar="DIR|MODEL" if dir_ok else "MODEL",
                        help=f"{what}a .keras/.h5/.npz/.tflite model")
    parser.add_argument("--calibration", metavar="X.npy",
                        help="representative float inputs (N,H,W,C) for quantizing a float model")
    parser.add_argument("--quantizer", choices=api.QUANTIZERS, default="sepgen",
                        help="sepgen's own post-training quantizer (default) or the TFLite converter (Keras input)")
    parser.add_argument("--verbose", action="store_true",
                        help="let TensorFlow, Keras and the TFLite converter print (captured otherwise)")


def _schedule_args(p: argparse.ArgumentParser) -> None:
    """--schedule/--reuse-input of verify and profile: how to generate the C when MODEL is a model file."""
    p.add_argument("--schedule", choices=MODES,
                   help="schedule to generate with when MODEL is a model file (a DIR keeps its own); default as "
                        "for 'generate --target' with this --target")
    p.add_argument("--reuse-input", action="store_true", help="as 'generate --reuse-input', for a model file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sepgen", description="Depthwise-separable CNNs -> int8 -> fixed-size C, verified bit for bit.")
    parser.add_argument("--version", action="version", version=f"sepgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("generate", help="quantize (if needed) and write C sources")
    _model_arg(p, dir_ok=False)
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory: new, empty, or sepgen's own earlier output (written atomically)")
    p.add_argument("--force", action="store_true",
                   help="also replace files of sepgen's earlier output in DIR that were edited since")
    p.add_argument("--prefix", default="model", type=_prefix, help="C symbol and file prefix (default: model)")
    p.add_argument("--target", choices=targets.TARGETS, default="host",
                   help="pick each op's kernel variant for this core (portable C99 where an op has none; host: C99 "
                        "written for auto-vectorization; portable: the reference kernels only)")
    p.add_argument("--schedule", choices=MODES,
                   help="layer: whole tensors layer by layer; stream: chains of convolutions row by row through "
                        "line buffers; auto: the smaller arena, chains cut where that pays. Default: auto (streamed "
                        "convolutions run the target's DSP/Helium kernels too)")
    p.add_argument("--reuse-input", action="store_true",
                   help="let invoke() overwrite its input buffer once read (smaller arena; said in the header)")
    p.add_argument("--micropython", action="append", choices=tuple(MICROPYTHON_BACKENDS), default=[],
                   metavar="BACKEND", help="also write a MicroPython backend (repeatable): "
                   + "; ".join(f"{k} = {v}" for k, v in MICROPYTHON_BACKENDS.items()))
    p.add_argument("--layout", action="append", choices=tuple(LAYOUTS), default=[], metavar="LAYOUT",
                   help="also write the build files of a firmware ecosystem, the model as a library named after "
                   "the prefix (repeatable): " + "; ".join(f"{k} = {v}" for k, v in LAYOUTS.items()))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("report", help="MACs, parameters, flash and RAM per layer")
    _model_arg(p, dir_ok=True)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object (schema: README, 'JSON report')")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table")
    fmt.add_argument("--html", metavar="FILE", help="write a self-contained HTML report to FILE")
    p.add_argument("--force", action="store_true", help="overwrite FILE even if sepgen did not write it")
    p.add_argument("--schedule", choices=MODES, default="auto",
                   help="the schedule whose memory plan to show (a DIR: the one it was generated with)")
    p.add_argument("--reuse-input", action="store_true", help="plan as 'generate --reuse-input' would")
    p.add_argument("--prefix", default="model", type=_prefix,
                   help="the C prefix the report names macros with when MODEL is a model file (a DIR: its own)")
    p.add_argument("--board", metavar="NAME",
                   help="also say whether the model fits this board's flash and RAM and estimate its latency "
                        "(presets: " + ", ".join(b.name for b in BOARDS) + "; docs/cli.md lists aliases)")
    p.add_argument("--estimate", action="store_true",
                   help="with --board: do not compile or run anything; estimate code size and instructions")
    for opt, what in (("--flash-kib", "flash"), ("--ram-kib", "RAM"), ("--clock-mhz", "clock")):
        p.add_argument(opt, type=_positive, metavar="N",
                       help=f"with --board: the board's {what} instead of the preset's (required by generic-<core>)")

    p = sub.add_parser("verify", help="compile and run the C; require byte equality with the simulator")
    _model_arg(p, dir_ok=True)
    p.add_argument("--inputs", metavar="X.npy", help="int8 or float inputs (N,H,W,C); default: random int8")
    p.add_argument("--count", type=_positive, default=100, help="random inputs when --inputs is not given")
    p.add_argument("--target", choices=TARGETS, default="host",
                   help="where the model runs: the host compiler, a Cortex-M core under QEMU, MicroPython's unix "
                   "port (every backend), or MicroPython's firmware on a Cortex-M core under QEMU (natmod and .py)")
    p.add_argument("--sanitize", action="store_true", help="build with -fsanitize=address,undefined")
    p.add_argument("--micropython-src", metavar="DIR",
                   help="MicroPython source tree for the micropython targets (default: $SEPGEN_MICROPYTHON_SRC); "
                   "only read: copied into a cache before building")
    p.add_argument("--prefix", default="model", type=_prefix, help="prefix when MODEL is a model file")
    _schedule_args(p)

    p = sub.add_parser("profile", help="executed instructions per layer on a Cortex-M core (QEMU), and sizes")
    _model_arg(p, dir_ok=True)
    p.add_argument("--target", choices=PROFILE_TARGETS, required=True,
                   help="the Cortex-M core whose executed instructions are counted (QEMU -icount); "
                   "micropython-cortex-*: per MicroPython backend on that core, beside the bare-metal C")
    p.add_argument("--json", action="store_true", help="one JSON object: per-layer rows, totals and sizes")
    p.add_argument("--micropython-src", metavar="DIR",
                   help="MicroPython source tree for the micropython targets (default: $SEPGEN_MICROPYTHON_SRC)")
    p.add_argument("--prefix", default="model", type=_prefix, help="prefix when MODEL is a model file")
    _schedule_args(p)

    p = sub.add_parser("simulate", help="run the int8 simulator: int8 NHWC in, int8 out")
    _model_arg(p, dir_ok=True)
    p.add_argument("--input", required=True, metavar="X.npy", help="int8 inputs (N,H,W,C)")
    p.add_argument("--output", required=True, metavar="Y.npy", help="int8 outputs, written at exactly this path")
    p.add_argument("--force", action="store_true", help="overwrite Y.npy if it exists")
    return parser


def _precheck_model(args) -> None:
    """Fail in milliseconds, before TensorFlow loads, on what can be known from the arguments alone."""
    path = Path(args.model)
    if path.is_dir():
        return
    check_model_path(path)
    if path.suffix.lower() in FLOAT_SUFFIXES and not args.calibration and args.command != "report":
        raise api.MissingCalibration(f"{path}: float model; pass representative inputs with --calibration X.npy "
                                     "(float32, NHWC, batch first)")
    if args.calibration:
        api.load_array(args.calibration, "calibration")


def _load(args, quiet: bool = False) -> tuple[Graph, str, dict[str, str] | None]:
    """(quantized graph, prefix, generated C files or None) from a DIR or a model file."""
    _precheck_model(args)
    path = Path(args.model)
    if path.is_dir():
        return api.load_generated(path)
    prepared = api.prepare(path, args.calibration, progress=not quiet, quantizer=args.quantizer)
    if prepared.agreement is not None:
        print(f"quantized {path.name}: {prepared.agreement}", file=sys.stderr)
    prefix = getattr(args, "prefix", "model")
    if not hasattr(args, "schedule"):
        return prepared.graph, prefix, None
    # the C a 'generate --target' for this core would write (micropython targets: the host's, plain C99)
    target = args.target if args.target in targets.TARGETS else "host"
    return prepared.graph, prefix, codegen.render(prepared.graph, prefix, target,
                                                  args.schedule or targets.default_schedule(target),
                                                  args.reuse_input)


def cmd_generate(args) -> int:
    inputs = (args.model, args.calibration)
    output.check_directory(args.output, inputs, args.force)  # refuse before the long work
    if Path(args.model).is_dir():
        raise UserError(f"{args.model}: is a directory; generate takes a model file (.keras/.h5/.npz/.tflite)")
    _precheck_model(args)
    prepared = api.prepare(args.model, args.calibration, progress=not args.quiet, quantizer=args.quantizer)
    if prepared.agreement is not None:
        print(f"quantized {Path(args.model).name}: {prepared.agreement}")
    out = api.generate(prepared.graph, args.output, args.prefix, force=args.force, inputs=inputs, target=args.target,
                       micropython=tuple(dict.fromkeys(args.micropython)),
                       schedule=args.schedule or targets.default_schedule(args.target),
                       reuse_input=args.reuse_input, layouts=tuple(dict.fromkeys(args.layout or ["plain"])),
                       tflite=prepared.tflite)
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    return 0


def cmd_report(args) -> int:
    from . import report as _report
    from .budget import budget as compute_budget

    sizes = (args.flash_kib, args.ram_kib, args.clock_mhz)
    board = get_board(args.board, *sizes) if args.board else None  # an unknown board fails before anything else
    if board is None and (args.estimate or any(v is not None for v in sizes)):
        raise UserError("--estimate, --flash-kib, --ram-kib and --clock-mhz need --board NAME")
    _precheck_model(args)
    if args.html:  # refuse before the long work
        output.check_file(args.html, (args.model, args.calibration), args.force, _report.is_html_report)
    path = Path(args.model)
    schedule, reuse_input, prefix, files = args.schedule, args.reuse_input, args.prefix, None
    if path.is_dir():
        graph, prefix, files = api.load_generated(path)
        schedule, reuse_input = codegen.schedule_of(files, prefix)
    elif args.calibration:
        graph = api.prepare(path, args.calibration, progress=False, quantizer=args.quantizer).graph
    else:
        from .frontends import load

        graph = load(path)
    memory = memory_report.memory_plan(graph, schedule, reuse_input)
    b = compute_budget(graph, arena_bytes=memory["arena_bytes"], prefix=prefix)  # RAM: the arena of that schedule
    fit = None
    if board is not None:
        from .board_report import board_report, to_text as board_text

        with spinner(f"measuring for {board.name}"):
            fit = board_report(board, graph, b, files, schedule, reuse_input, measure=not args.estimate)
    if args.json:
        print(json.dumps({**_report.to_json(b), "memory": memory, **({"board": fit} if fit else {})}, indent=2))
    elif args.markdown:
        print(_report.to_markdown(b) + (f"\n## Board\n\n```\n{board_text(fit)}```\n" if fit else ""))
    elif args.html:
        output.write_file(args.html, _report.to_html(b, memory, fit).encode(), inputs=(args.model, args.calibration),
                          force=args.force, is_ours=_report.is_html_report)
        print(f"wrote {args.html}")
    else:
        print(_report.to_text(b))
        print(memory_report.to_text(memory, prefix))
        if fit is not None:
            print(board_text(fit))
    return 0


def cmd_verify(args) -> int:
    graph, prefix, files = _load(args)
    if args.inputs:
        inputs = api.as_int8_inputs(graph, api.load_array(args.inputs, "inputs"), args.inputs)
    else:
        inputs = api.random_inputs(graph, args.count)
        if args.calibration:  # random inputs plus the calibration samples
            calibration = api.load_array(args.calibration, "calibration")
            inputs = np.concatenate([inputs, api.as_int8_inputs(graph, calibration, args.calibration)[: args.count]])
    if args.target == "micropython":
        from .micropython.run import verify_backends

        for backend, result in verify_backends(graph, inputs, prefix, files, args.micropython_src):
            if not result.ok:
                print(f"sepgen: MISMATCH ({backend} in MicroPython): {result.mismatch}", file=sys.stderr)
                return 1
            print(f"ok: {backend} in MicroPython == simulator, every output byte, on {result.samples} inputs")
        return 0
    if args.target in MICROPYTHON_QEMU:
        from .micropython.qemu import verify_backends as verify_on_qemu

        for backend, result in verify_on_qemu(graph, inputs, prefix, args.target, files, args.micropython_src):
            if not result.ok:
                print(f"sepgen: MISMATCH ({backend} in MicroPython): {result.mismatch}", file=sys.stderr)
                return 1
            print(f"ok: {backend} in MicroPython == simulator, every output byte, on {result.samples} inputs")
        return 0
    with spinner(f"compiling and running on {len(inputs)} inputs ({args.target})"):
        if args.target == "host":
            result = api.verify(graph, inputs, files, prefix, count=args.count, sanitize=args.sanitize)
        else:
            from .firmware import verify_target

            result = verify_target(graph, inputs, args.target, prefix, files)
    if not result.ok:
        print(f"sepgen: MISMATCH: {result.mismatch}", file=sys.stderr)
        return 1
    if Path(args.model).suffix.lower() == ".tflite":  # the independent oracle: TFLite Micro's kernels
        from .frontends.tflite import tflm_can_run
        from .tflm import compare_with_tflm

        reason = tflm_can_run(args.model)
        if reason:
            print(f"note: not compared with TFLite Micro: {reason}", file=sys.stderr)
            mismatch = None
        else:
            mismatch = compare_with_tflm(graph, args.model, inputs)
        if mismatch is not None:
            print(f"sepgen: MISMATCH with TFLite Micro (expected = TFLM): {mismatch}", file=sys.stderr)
            return 1
        if not reason:
            print(f"ok: simulator == TFLite Micro on every tensor, {len(inputs)} inputs")
    print(f"ok: generated C == simulator, byte for byte, on {result.summary()} ({args.target})")
    return 0


def cmd_profile(args) -> int:
    from .firmware import format_profile, format_sizes, profile, profile_to_json, sizes

    graph, prefix, files = _load(args)
    if args.target in MICROPYTHON_QEMU:
        from .micropython.costs import costs_to_json, format_costs, measure

        # a DIR's own C; for a model file each board's fastest kernels (sepgen.micropython.costs.KERNEL_TARGET)
        c_files = files if Path(args.model).is_dir() else None
        with spinner(f"building and running MicroPython in QEMU ({args.target})"):
            rows = measure(graph, prefix, args.target, api.random_inputs(graph, 3)[2:], c_files, args.micropython_src)
        print(json.dumps(costs_to_json(rows, args.target), indent=2) if args.json else format_costs(rows, args.target))
        return 0
    with spinner(f"building and running in QEMU ({args.target})"):
        measured, footprint = profile(graph, args.target, prefix, files), sizes(graph, args.target, prefix, files)
    if args.json:
        print(json.dumps(profile_to_json(measured, footprint), indent=2))
        return 0
    print(format_profile(measured))
    print()
    print(format_sizes(footprint))
    return 0


def cmd_simulate(args) -> int:
    in_paths = (args.model, args.calibration, args.input)
    output.check_file(args.output, in_paths, args.force)  # refuse before the long work
    graph, _, _ = _load(args, quiet=True)
    x = api.load_array(args.input, "input")
    if x.dtype != np.int8:
        quant = graph.tensors[graph.input].quant
        raise UserError(f"{args.input}: int8 inputs expected, got {x.dtype} (quantize with the model's input "
                        f"scale {quant.scale:g} and zero point {quant.zero_point})")
    y = api.run_int8(graph, api.as_int8_inputs(graph, x, args.input))
    buffer = io.BytesIO()
    np.save(buffer, y, allow_pickle=False)
    written = output.write_file(args.output, buffer.getvalue(), inputs=in_paths, force=args.force)
    print(f"wrote {written}: int8 {y.shape}")
    return 0


COMMANDS = {"generate": cmd_generate, "report": cmd_report, "verify": cmd_verify, "simulate": cmd_simulate,
            "profile": cmd_profile}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return int(exc.code or 0)
    # TensorFlow (imported lazily for Keras input) must not add lines to sepgen's output (sepgen.quiet)
    # unless --verbose.
    set_verbose(getattr(args, "verbose", False))
    if not getattr(args, "verbose", False):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        if os.environ.get("SEPGEN_DEBUG"):
            raise
        print(f"sepgen: error: {one_line(exc, 500) or type(exc).__name__}", file=sys.stderr)
        return 2
    except ToolchainError as exc:
        if os.environ.get("SEPGEN_DEBUG"):
            raise
        # The tool's own output (in the message) is what explains the failure; a Python traceback would not.
        print(str(exc), file=sys.stderr)
        first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"sepgen: error: {one_line(first, 200)} (the tool's output is above; if the tool works for other "
              "projects, this is a bug in sepgen: please report it)", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("sepgen: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a bug: keep the traceback and ask for a report
        traceback.print_exc()
        print(f"sepgen: internal error (sepgen {__version__}): this is a bug in sepgen, not in your model or "
              "data; please report it with the command line and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
