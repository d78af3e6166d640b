"""Verification: generated C == simulator, byte for byte, on every layer's output.

The C model is compiled with a host harness (``-D<PREFIX>_TRACE``) that dumps each
computed layer's output for every input (the layers of :meth:`Graph.computed_layers`, which
the generated C traces by their index in ``graph.layers``); the first differing layer, flat
index, expected and actual value are reported on a mismatch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import codegen, simulate, toolchain
from .ir import Graph


@dataclass(frozen=True)
class Mismatch:
    sample: int
    layer: str
    op: str
    index: int  # flat NHWC index in the layer's output
    expected: int
    actual: int
    streamed_before: tuple[str, ...] = ()  # untraced layers streamed into this one (sepgen.schedule)

    def __str__(self) -> str:
        where = (f" (the end of a streamed chain: {', '.join(self.streamed_before)} are not traced)"
                 if self.streamed_before else "")
        return (f"sample {self.sample}: layer '{self.layer}' ({self.op}){where} differs at index {self.index}: "
                f"expected {self.expected}, got {self.actual}")


@dataclass(frozen=True)
class VerifyResult:
    samples: int
    layers: int  # layers whose whole output the C traced and the comparison checked
    mismatch: Mismatch | None
    streamed: int = 0  # layers inside streamed chains: never whole in the C, checked through their chain's end

    def summary(self) -> str:
        """'<samples> inputs x <layers> layers', naming the layers checked only through a streamed chain."""
        if not self.streamed:
            return f"{self.samples} inputs x {self.layers} layers"
        return (f"{self.samples} inputs x {self.layers} traced layers (+{self.streamed} streamed inside chains, "
                "checked through each chain's last layer)")

    @property
    def ok(self) -> bool:
        return self.mismatch is None


class VerificationFailed(AssertionError):
    pass


def run_c(graph: Graph, inputs: np.ndarray, prefix: str = "model", sanitize: bool = False,
          files: dict[str, str] | None = None, schedule: str | None = None,
          reuse_input: bool = False, target: str = "host") -> dict[str, np.ndarray]:
    """Compile (cached) and run the generated C on int8 inputs (N,)+shape; without ``files`` the C is rendered
    with the kernels of ``target`` (:mod:`sepgen.targets`; e.g. ``portable`` for the reference kernels).

    Returns each traced tensor's C output by tensor name, plus "__output__" for
    the caller's output buffer, each as int8 (N,)+shape.  ``schedule``/``reuse_input``: those of
    :func:`sepgen.codegen.render`; None with ``files``: read from their header (:func:`codegen.schedule_of`).
    """
    schedule, reuse_input = resolve_schedule(files, prefix, schedule, reuse_input)
    files = dict(files or codegen.render(graph, prefix, target, schedule=schedule, reuse_input=reuse_input))
    files["sepgen_harness.c"] = codegen.render_harness(graph, prefix, "host", schedule, reuse_input)
    flags = toolchain.SANITIZE_FLAGS if sanitize else toolchain.HOST_FLAGS
    exe = toolchain.compile_executable(files, flags, defines=(f"{prefix.upper()}_TRACE",))
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="sepgen-run-") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "trace.bin"
        in_path.write_bytes(x.tobytes())
        proc = toolchain.run([str(exe), str(in_path), str(out_path)])
        if proc.returncode != 0:
            raise VerificationFailed(f"harness exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-3000:]}")
        raw = out_path.read_bytes()
    return parse_trace(graph, raw, len(x), "harness", schedule, reuse_input)


def resolve_schedule(files: dict[str, str] | None, prefix: str, schedule: str | None,
                     reuse_input: bool) -> tuple[str, bool]:
    """The (schedule, reuse_input) of the C under test: as given, else read from ``files``, else layer."""
    if schedule is not None:
        return schedule, reuse_input
    return codegen.schedule_of(files, prefix) if files else ("layer", reuse_input)


def parse_trace(graph: Graph, raw: bytes, samples: int, what: str, schedule: str = "layer",
                reuse_input: bool = False) -> dict[str, np.ndarray]:
    """Split a harness trace into {tensor name: int8 (N,)+shape}, with "__output__" for the caller's output buffer.

    Per sample, the trace holds the output of every layer of :func:`sepgen.codegen.traced_layers` (every
    computed layer under the layer schedule) in that order (the harness has checked that the hook saw
    exactly those layer numbers, in order, with their sizes), then the output buffer.
    """
    traced = [graph.layers[index] for index, _ in codegen.traced_layers(graph, schedule, reuse_input)]
    names = [layer.output for layer in traced] + ["__output__"]
    shapes = [graph.tensors[layer.output].shape for layer in traced] + [graph.tensors[graph.output].shape]
    sizes = [int(np.prod(shape)) for shape in shapes]
    data = np.frombuffer(raw, dtype=np.int8)
    if data.size != samples * sum(sizes):
        raise VerificationFailed(f"{what} wrote {data.size} trace bytes, expected {samples * sum(sizes)}")
    records, result, start = data.reshape(samples, sum(sizes)), {}, 0
    for name, shape, size in zip(names, shapes, sizes):
        result[name] = records[:, start:start + size].reshape((samples,) + tuple(shape))
        start += size
    return result


def compare(graph: Graph, inputs: np.ndarray, c_values: dict[str, np.ndarray]) -> VerifyResult:
    """Compare C outputs with the simulator; the first mismatch in layer order (then sample, index).

    Only the layers in ``c_values`` are compared: a streamed chain traces its last layer only, so a wrong
    row inside it shows at that layer (whose name then says which layers were streamed before it)."""
    expected = simulate.run(graph, inputs, all_tensors=True)
    traced = [layer for _, layer in graph.computed_layers() if layer.output in c_values]
    hidden = [layer.name for _, layer in graph.computed_layers() if layer.output not in c_values]
    streamed, checks = len(hidden), []
    for layer in traced:
        before = [name for name in hidden if graph.layers.index(graph.layer(name)) < graph.layers.index(layer)]
        hidden = [name for name in hidden if name not in before]
        checks.append((layer.name, layer.op, expected[layer.output], c_values[layer.output], tuple(before)))
    checks.append(("<output buffer>", "output", expected[graph.output], c_values["__output__"], ()))
    for name, op, want, got, before in checks:
        diff = np.argwhere(want.reshape(len(want), -1) != got.reshape(len(got), -1))
        if len(diff):
            sample, index = (int(v) for v in diff[0])
            return VerifyResult(len(inputs), len(traced), Mismatch(
                sample, name, op, index, int(want.reshape(len(want), -1)[sample, index]),
                int(got.reshape(len(got), -1)[sample, index]), before), streamed)
    return VerifyResult(len(inputs), len(traced), None, streamed)


def verify_host(graph: Graph, inputs: np.ndarray, prefix: str = "model", sanitize: bool = False,
                files: dict[str, str] | None = None, schedule: str | None = None,
                reuse_input: bool = False, target: str = "host") -> VerifyResult:
    """Render (the kernels of ``target``), compile with the host compiler, run on ``inputs`` and compare every
    traced layer."""
    return compare(graph, inputs, run_c(graph, inputs, prefix, sanitize, files, schedule, reuse_input, target))


def random_inputs(graph: Graph, count: int, seed: int = 0) -> np.ndarray:
    """Uniform int8 inputs over the full range [-128, 127], plus the two constant extremes."""
    rng = np.random.default_rng(seed)
    shape = graph.tensors[graph.input].shape
    x = rng.integers(-128, 128, size=(count,) + shape).astype(np.int8)
    if count >= 2:
        x[0], x[1] = -128, 127
    return x
