"""Command line: a thin layer over :mod:`sepgen.api` (DESIGN.md §6).

User errors print one line on stderr and exit 2; a failed verification exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__, api
from .bounds import AccumulatorOverflow
from .codegen import InvalidIdentifier
from .frontends import ModelFileError
from .ir import Graph, UnsupportedLayer
from .tflm import TFLMUnavailable
from .toolchain import ToolchainError

USER_ERRORS = (UnsupportedLayer, ModelFileError, api.MissingCalibration, InvalidIdentifier, AccumulatorOverflow,
               FileNotFoundError, NotADirectoryError, ToolchainError, TFLMUnavailable, ValueError)
TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m55")  # Cortex-M: QEMU boards, see firmware/README.md
PROFILE_TARGETS = TARGETS[1:]


class UserError(Exception):
    pass


def _model_arg(parser: argparse.ArgumentParser, dir_ok: bool) -> None:
    what = "DIR made by 'sepgen generate', or " if dir_ok else ""
    parser.add_argument("model", metavar="DIR|MODEL" if dir_ok else "MODEL",
                        help=f"{what}a .keras/.h5/.npz/.tflite model")
    parser.add_argument("--calibration", metavar="X.npy",
                        help="representative float inputs (N,H,W,C) for quantizing a float model")
    parser.add_argument("--quantizer", choices=api.QUANTIZERS, default="sepgen",
                        help="sepgen's own post-training quantizer (default) or the TFLite converter (Keras input)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sepgen", description="Depthwise-separable CNNs -> int8 -> fixed-size C, verified bit for bit.")
    parser.add_argument("--version", action="version", version=f"sepgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="quantize (if needed) and write C sources")
    _model_arg(p, dir_ok=False)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (replaced atomically)")
    p.add_argument("--prefix", default="model", help="C symbol and file prefix (default: model)")
    p.add_argument("--target", choices=TARGETS, default="host")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("report", help="MACs, parameters, flash and RAM per layer")
    _model_arg(p, dir_ok=True)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object (schema: DESIGN.md §6)")
    fmt.add_argument("--markdown", action="store_true")
    fmt.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")

    p = sub.add_parser("verify", help="compile and run the C; require byte equality with the simulator")
    _model_arg(p, dir_ok=True)
    p.add_argument("--inputs", metavar="X.npy", help="int8 or float inputs (N,H,W,C); default: random int8")
    p.add_argument("--count", type=int, default=100, help="random inputs when --inputs is not given")
    p.add_argument("--target", choices=TARGETS, default="host")
    p.add_argument("--sanitize", action="store_true", help="build with -fsanitize=address,undefined")
    p.add_argument("--prefix", default="model", help="prefix when MODEL is a model file")

    p = sub.add_parser("profile", help="executed instructions per layer on a Cortex-M core (QEMU), and sizes")
    _model_arg(p, dir_ok=True)
    p.add_argument("--target", choices=PROFILE_TARGETS, required=True)
    p.add_argument("--prefix", default="model", help="prefix when MODEL is a model file")

    p = sub.add_parser("simulate", help="run the int8 simulator: int8 NHWC in, int8 out")
    _model_arg(p, dir_ok=True)
    p.add_argument("--input", required=True, metavar="X.npy", help="int8 inputs (N,H,W,C)")
    p.add_argument("--output", required=True, metavar="Y.npy")
    return parser


def _load(args, quiet: bool = False) -> tuple[Graph, str, dict[str, str] | None]:
    """(quantized graph, prefix, generated C files or None) from a DIR or a model file."""
    path = Path(args.model)
    if path.is_dir():
        return api.load_generated(path)
    prepared = api.prepare(path, args.calibration, progress=not quiet, quantizer=args.quantizer)
    if prepared.agreement is not None:
        print(f"quantized {path.name}: {prepared.agreement}", file=sys.stderr)
    return prepared.graph, getattr(args, "prefix", "model"), None


def cmd_generate(args) -> int:
    prepared = api.prepare(args.model, args.calibration, progress=not args.quiet, quantizer=args.quantizer)
    if prepared.agreement is not None:
        print(f"quantized {Path(args.model).name}: {prepared.agreement}")
    out = api.generate(prepared.graph, args.output, args.prefix)
    files = sorted(p.name for p in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    return 0


def cmd_report(args) -> int:
    from . import report as _report
    from .budget import budget as compute_budget

    path = Path(args.model)
    if path.is_dir():
        graph = api.load_generated(path)[0]
    elif args.calibration:
        graph = api.prepare(path, args.calibration, progress=False, quantizer=args.quantizer).graph
    else:
        from .frontends import load

        graph = load(path)
    b = compute_budget(graph)
    if args.json:
        print(json.dumps(_report.to_json(b), indent=2))
    elif args.markdown:
        print(_report.to_markdown(b))
    elif args.html:
        api.write_file_atomically(args.html, _report.to_html(b).encode())
        print(f"wrote {args.html}")
    else:
        print(_report.to_text(b))
    return 0


def cmd_verify(args) -> int:
    graph, prefix, files = _load(args)
    inputs = api.load_array(args.inputs, "inputs") if args.inputs else None
    if inputs is None and args.calibration:  # random inputs plus the calibration samples
        calibration = api.as_int8_inputs(graph, api.load_array(args.calibration, "calibration")[: args.count])
        inputs = np.concatenate([api.random_inputs(graph, args.count), calibration])
    if inputs is None:
        inputs = api.random_inputs(graph, args.count)
    if args.target == "host":
        result = api.verify(graph, inputs, files, prefix, count=args.count, sanitize=args.sanitize)
    else:
        from .firmware import verify_target

        result = verify_target(graph, api.as_int8_inputs(graph, inputs), args.target, prefix, files)
    if not result.ok:
        print(f"sepgen: MISMATCH: {result.mismatch}", file=sys.stderr)
        return 1
    if Path(args.model).suffix.lower() == ".tflite":  # the independent oracle: TFLite Micro's kernels
        from .tflm import compare_with_tflm

        mismatch = compare_with_tflm(graph, args.model, api.as_int8_inputs(graph, inputs))
        if mismatch is not None:
            print(f"sepgen: MISMATCH with TFLite Micro (expected = TFLM): {mismatch}", file=sys.stderr)
            return 1
        print(f"ok: simulator == TFLite Micro on every tensor, {len(inputs)} inputs")
    print(f"ok: generated C == simulator, byte for byte, on {result.samples} inputs x {result.layers} layers "
          f"({args.target})")
    return 0


def cmd_profile(args) -> int:
    from .firmware import format_profile, format_sizes, profile, sizes

    graph, prefix, files = _load(args)
    print(format_profile(profile(graph, args.target, prefix, files)))
    print()
    print(format_sizes(sizes(graph, args.target, prefix, files)))
    return 0


def cmd_simulate(args) -> int:
    graph, _, _ = _load(args, quiet=True)
    x = api.load_array(args.input, "input")
    if x.dtype != np.int8:
        raise UserError(f"{args.input}: int8 inputs expected, got {x.dtype} (quantize with the model's input "
                        f"scale {graph.tensors[graph.input].quant.scale:g} and zero point "
                        f"{graph.tensors[graph.input].quant.zero_point})")
    y = api.run_int8(graph, x)
    np.save(args.output, y, allow_pickle=False)
    print(f"wrote {args.output}: int8 {y.shape}")
    return 0


COMMANDS = {"generate": cmd_generate, "report": cmd_report, "verify": cmd_verify, "simulate": cmd_simulate,
            "profile": cmd_profile}


def main(argv: list[str] | None = None) -> int:
    # TensorFlow (imported lazily for Keras input) must not add log lines to our one-line errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, *USER_ERRORS) as exc:
        if os.environ.get("SEPGEN_DEBUG"):
            raise
        message = " ".join(str(exc).split())[:500] if str(exc).strip() else type(exc).__name__
        print(f"sepgen: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
