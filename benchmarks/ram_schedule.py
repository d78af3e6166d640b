"""RAM of the layer-by-layer and the row-streaming schedules (sepgen.schedule) vs TensorFlow Lite Micro.

    python benchmarks/ram_schedule.py [--json]

Per model, measured in one run: TFLM's arena total (print_allocations, kAllocationRecording), the
ping-pong bound (the largest inputs + output of one layer: no placement of whole tensors goes lower),
and sepgen's RAM counted as TFLM counts it (<PREFIX>_ARENA_SIZE + input + output bytes) under
``--schedule layer``, ``--schedule auto`` and ``--schedule auto --reuse-input``; the extra MACs of the
chosen schedule (0: no recompute).
The models are converted to int8 .tflite with random weights (shapes are what matter) and read back
with sepgen's TFLite frontend, as benchmarks/tflm_compare.py does.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflm_compare import MODELS, tflm_arena_bytes  # noqa: E402

from sepgen import zoo  # noqa: E402
from sepgen.schedule import schedule  # noqa: E402
from sepgen.tfconvert import quantize_with_tflite  # noqa: E402

#: RAM targets of issue 11 (arena + input + output bytes).
TARGETS = {"DS-CNN KWS 49x10": 7_000, "MobileNetV1-0.25 96x96": 40_000}


def _digits_model():
    spec = importlib.util.spec_from_file_location(
        "digits_example", Path(__file__).resolve().parent.parent / "examples" / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


def measure(name: str, model, shape: tuple[int, ...]) -> dict:
    zoo.randomize_keras_weights(model, 1)
    graph, data = quantize_with_tflite(model, np.random.default_rng(0).normal(size=(32,) + shape).astype(np.float32),
                                       name)
    io = graph.tensors[graph.input].size + graph.tensors[graph.output].size
    layer, auto, reuse = schedule(graph, "layer"), schedule(graph, "auto"), schedule(graph, "auto", True)
    ping_pong = max(sum(graph.tensors[t].size for t in layer_.inputs) + graph.tensors[layer_.output].size
                    for _, layer_ in graph.computed_layers())
    peak, where = auto.peak()
    return {"model": name, "tflm_arena": tflm_arena_bytes(data), "ping_pong_bound": ping_pong,
            "input_output": io, "layer_arena": layer.arena_size, "layer_ram": layer.arena_size + io,
            "auto_arena": auto.arena_size, "auto_ram": auto.arena_size + io, "streamed_chains": len(auto.streams),
            "extra_macs": auto.extra_macs, "peak_stage": where, "target": TARGETS.get(name),
            "reuse_arena": reuse.arena_size, "reuse_ram": reuse.arena_size + io}


def main(argv: list[str]) -> int:
    models = [(name, factory(), shape) for name, (factory, shape) in MODELS.items()]
    models.append(("digits example 8x8", _digits_model(), (8, 8, 1)))
    rows = [measure(*m) for m in models]
    if "--json" in argv:
        print(json.dumps(rows, indent=1))
        return 0
    head = (f"{'model':<24} {'TFLM arena':>10} {'ping-pong':>10} {'layer RAM':>10} {'auto RAM':>9} "
            f"{'vs TFLM':>8} {'+reuse RAM':>10} {'vs TFLM':>8} {'target':>7} {'extra MACs':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        target = f"{r['target']:,}" if r["target"] else "-"
        print(f"{r['model']:<24} {r['tflm_arena']:>10,} {r['ping_pong_bound']:>10,} {r['layer_ram']:>10,} "
              f"{r['auto_ram']:>9,} {r['auto_ram'] / r['tflm_arena']:>7.2f}x {r['reuse_ram']:>10,} "
              f"{r['reuse_ram'] / r['tflm_arena']:>7.2f}x {target:>7} {r['extra_macs']:>10,}")
    print("\nRAM = <PREFIX>_ARENA_SIZE + input + output bytes (TFLM's arena holds those too); layer = "
          "--schedule layer, auto = --schedule auto (row streaming), +reuse = --schedule auto --reuse-input; "
          "ping-pong = largest inputs + output of one layer.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
