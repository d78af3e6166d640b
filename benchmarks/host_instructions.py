"""Executed x86 instructions of one `<prefix>_invoke` on the host (valgrind's callgrind: deterministic, unlike wall
clock on a shared machine), the portable reference kernels against the host kernel variants (`--target host`),
on the models of benchmarks/tflm_compare.py (converted by the TFLite converter, random weights).

    python benchmarks/host_instructions.py            # needs valgrind (Debian package valgrind)

Per model: instructions per inference and per MAC for `--target portable` and `--target host` at the flags sepgen's
own builds use (-O2, no -march), the host kernels also at -O3, under the layer schedule and the host default
`--schedule auto`; then the host kernels' instructions per MAC by layer (-O2, built with
-fno-inline-functions-called-once -fno-inline-small-functions so that every layer is a function of its own).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sepgen import __version__, codegen, toolchain

sys.path.insert(0, str(Path(__file__).parent))
from tflm_compare import converted_models  # noqa: E402

PREFIX = "bench"
NO_INLINE = ("-fno-inline-functions-called-once", "-fno-inline-small-functions")


def callgrind(graph, x: np.ndarray, target: str, schedule: str, flags: tuple[str, ...]) -> dict[str, int]:
    """Instructions of one invoke (key "invoke") and inclusive instructions of each function called from it."""
    files = dict(codegen.render(graph, PREFIX, target, schedule))
    files["bench_main.c"] = codegen.environment().get_template("harness/bench.c.j2").render(
        prefix=PREFIX, PREFIX=PREFIX.upper(), version=__version__)
    exe = toolchain.compile_executable(files, ("-std=c99", *flags))
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.bin", Path(tmp) / "callgrind.out"
        inp.write_bytes(x.tobytes())
        # the harness runs invoke twice (a warm-up, then 1 timed repeat): counts are halved
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        f"--toggle-collect={PREFIX}_invoke", str(exe), str(inp), "1"], capture_output=True, check=True)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                              capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+\S*:([A-Za-z0-9_]+)", line)
        if found:
            name = found.group(2)
            counts["invoke" if name == f"{PREFIX}_invoke" else name] = int(found.group(1).replace(",", "")) // 2
    return counts


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    for name, graph, _, x in converted_models():
        macs = sum(layer.macs() for layer in graph.layers if hasattr(layer, "macs"))
        print(f"\n{name}: {macs:,} MACs; executed x86-64 instructions per invoke (callgrind)")
        header = f"{'kernels':<10} {'schedule':<9} {'flags':<6} {'instructions':>13} {'per MAC':>8} {'vs portable':>12}"
        print(header)
        print("-" * len(header))
        base = {}
        for target, schedule, flags in (("portable", "layer", "-O2"), ("host", "layer", "-O2"),
                                        ("host", "layer", "-O3"), ("portable", "auto", "-O2"),
                                        ("host", "auto", "-O2")):
            n = callgrind(graph, x, target, schedule, (flags,))["invoke"]
            base.setdefault(schedule, n)
            print(f"{target:<10} {schedule:<9} {flags:<6} {n:>13,} {n / macs:>8.2f} {base[schedule] / n:>11.2f}x")
        counts = callgrind(graph, x, "host", "layer", ("-O2", *NO_INLINE))
        print("\nhost kernels by layer (-O2, layers not inlined): instructions, per MAC")
        for index, layer in enumerate(graph.layers):
            n = counts.get(f"{PREFIX}_layer{index}_{layer.op}")
            if n is not None:
                per = f"{n / layer.macs():.2f}" if hasattr(layer, "macs") and layer.macs() else "-"
                print(f"  layer {index:<3} {layer.op:<18} {n:>11,} {per:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
