"""Test helpers: build small random graphs, quantize them, and check C == simulator."""

from __future__ import annotations

import numpy as np

from sepgen import verification as verify
from sepgen.frontends.builder import GraphBuilder
from sepgen.ir import Graph
from sepgen.quantize import quantize, quantize_tensor


def rand(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype(np.float32)


def calibration(rng: np.random.Generator, shape: tuple[int, ...], n: int = 64, kind: str = "normal") -> np.ndarray:
    """Float calibration data; kind 'positive'/'negative' force input zero points -128/127."""
    x = rng.normal(size=(n,) + tuple(shape)).astype(np.float32)
    if kind == "positive":
        x = np.abs(x) + 0.1
    elif kind == "negative":
        x = -np.abs(x) - 0.1
    elif kind == "wide":
        x = x * 40.0
    return x


def quantized(graph: Graph, rng: np.random.Generator, kind: str = "normal") -> tuple[Graph, np.ndarray]:
    """(int8 graph, int8 test inputs: random full-range + quantized calibration samples)."""
    x = calibration(rng, graph.tensors[graph.input].shape, kind=kind)
    q = quantize(graph, x, progress=False)
    inputs = np.concatenate([verify.random_inputs(q, 24, seed=int(rng.integers(1 << 30))),
                             quantize_tensor(x[:16], q.tensors[q.input].quant)])
    return q, inputs


#: The kernels the host builds check: the host variants (``--target host``) and the portable reference.
C_TARGETS = ("host", "portable")


def assert_c_matches(graph: Graph, inputs: np.ndarray, sanitize: bool = True,
                     targets: tuple[str, ...] = C_TARGETS) -> None:
    """Generated C (plain -O2 and, by default, ASan+UBSan) equals the simulator on every layer, rendered for each
    of ``targets`` (by default the host kernel variants and the portable reference kernels)."""
    for target in targets:
        for san in ((False, True) if sanitize else (False,)):
            result = verify.verify_host(graph, inputs, sanitize=san, target=target)
            assert result.ok, f"--target {target}{', sanitizer build' if san else ''}: {result.mismatch}"


def single_layer(shape: tuple[int, ...], build) -> Graph:
    """Graph with one input of ``shape``; ``build(builder, x) -> output tensor``."""
    b = GraphBuilder(shape)
    return b.build(build(b, b.input))
