"""sepgen vs TensorFlow Lite Micro (the tflite-micro wheel) on converted int8 models.

    python benchmarks/tflm_compare.py

Per model: RAM counted as TFLM counts it (<PREFIX>_ARENA_SIZE + input + output buffers, which TFLM's
arena also holds) vs TFLM's arena total (print_allocations in kAllocationRecording mode); constant
bytes (int8 weights + int32 bias + multipliers/shifts) vs the .tflite file size; host latency of the
generated C (-O2, no -march; median of many invokes) with the host kernels (`--target host`) and with the
portable reference kernels (`--target portable`) vs TFLM's invoke() from Python (median), measured in the
same run, interleaved.  Weights and BatchNorm statistics are random (shapes are what matter here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sepgen import __version__, codegen, toolchain, zoo  # noqa: E402
from sepgen.plan import plan  # noqa: E402
from sepgen.tfconvert import quantize_with_tflite  # noqa: E402
from sepgen.verification import random_inputs  # noqa: E402

MODELS = {"DS-CNN KWS 49x10": (zoo.ds_cnn_kws_keras, (49, 10, 1)),
          "MobileNetV1-0.25 96x96": (zoo.mobilenet_v1_025_keras, (96, 96, 3))}


def converted_models():
    """Per model of MODELS: (name, int8 graph, .tflite bytes, one int8 input); random weights (seed 1), converted
    by the TFLite converter on 32 normal calibration samples, so every benchmark times the same model."""
    for name, (factory, shape) in MODELS.items():
        model = factory()
        zoo.randomize_keras_weights(model, 1)
        graph, data = quantize_with_tflite(
            model, np.random.default_rng(0).normal(size=(32,) + shape).astype(np.float32), name)
        yield name, graph, data, random_inputs(graph, 1)[0]


def tflm_arena_bytes(data: bytes) -> int:
    """TFLM's arena total, parsed from print_allocations() (C-level stderr, captured through fd 2)."""
    from tflite_micro.python.tflite_micro import runtime

    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            interpreter = runtime.Interpreter.from_bytes(
                data, intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    for line in text.splitlines():
        if "Arena allocation total" in line:
            return int(line.split("total")[1].split()[0])
    raise RuntimeError("print_allocations() printed no arena total")


def c_latency_ns(graph, x: np.ndarray, repeats: int, target: str = "host") -> int:
    files = dict(codegen.render(graph, "bench", target))
    files["bench_main.c"] = codegen.environment().get_template("harness/bench.c.j2").render(
        prefix="bench", PREFIX="BENCH", version=__version__)
    exe = toolchain.compile_executable(files, ("-std=c99", "-O2"))
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(x.tobytes())
        f.flush()
        out = subprocess.run([str(exe), f.name, str(repeats)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def tflm_latency_ns(data: bytes, x: np.ndarray, repeats: int) -> int:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(data)
    interpreter.set_input(x[None], 0)
    interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append(time.perf_counter_ns() - start)
    return int(np.median(times))


def main() -> int:
    rows = []
    for name, graph, data, x in converted_models():
        sepgen_ram = plan(graph).arena_size + graph.tensors[graph.input].size + graph.tensors[graph.output].size
        tflm_ram = tflm_arena_bytes(data)
        constants = sum(layer.weight_bytes() for layer in graph.layers)
        c_ns, portable_ns, tflm_ns = [], [], []
        for _ in range(3):  # interleave: the machine is shared and noisy
            c_ns.append(c_latency_ns(graph, x, 50))
            portable_ns.append(c_latency_ns(graph, x, 50, "portable"))
            tflm_ns.append(tflm_latency_ns(data, x, 20))
        c, p, t = float(np.median(c_ns)), float(np.median(portable_ns)), float(np.median(tflm_ns))
        rows.append((name, sepgen_ram, tflm_ram, constants, len(data), c / 1e6, p / 1e6, t / 1e6))
    header = (f"{'model':<24} {'sepgen RAM':>11} {'TFLM arena':>11} {'ratio':>6} {'constants':>10} "
              f"{'.tflite':>9} {'ratio':>6} {'C ms':>7} {'portable':>9} {'TFLM ms':>8} {'speed-up':>9} {'portable':>9}")
    print(header)
    print("-" * len(header))
    for name, sr, tr, k, size, c, p, t in rows:
        print(f"{name:<24} {sr:>11,} {tr:>11,} {sr / tr:>6.2f} {k:>10,} {size:>9,} {k / size:>6.2f} "
              f"{c:>7.2f} {p:>9.2f} {t:>8.2f} {t / c:>8.1f}x {t / p:>8.1f}x")
    print("\nRAM: sepgen = <PREFIX>_ARENA_SIZE + input + output bytes (TFLM's arena holds those too, plus its "
          "own bookkeeping); latency: medians on this host, same run; C ms: --target host kernels, portable: "
          "--target portable, speed-up: TFLM ms / C ms (and / portable ms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
