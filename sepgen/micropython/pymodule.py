"""The pure MicroPython backend: ``<prefix>.py`` (weights as bytes, the simulator's integer arithmetic) and
``<prefix>_viper.py`` (the multiply-accumulate loops under ``@micropython.viper``; ``<prefix>.py`` falls back to
the same loops in plain Python when that module cannot be imported, e.g. on a port without a native emitter).

Python prepares numbers only, taken from the ops themselves (int8 kernels, int32 biases, each layer's
Requant, Mean.folded_requant, the Add and Softmax parameters, sepgen.plan's arena offsets); every line of
MicroPython is in ``templates/micropython/``.
"""

from __future__ import annotations

import numpy as np

from .. import __version__, codegen, fixedpoint as fp
from ..errors import UserError
from ..ir import Graph
from ..ops._common import clamp_range, input_offset
from ..plan import plan

SUPPORTED = ("conv2d", "depthwise_conv2d", "fully_connected", "max_pool2d", "avg_pool2d", "mean", "add",
             "softmax", "pad")
#: What the kernels of SUPPORTED ops do not cover (refused by name at generation; shown in the README's op table).
LIMITS = {"add": "two inputs of one shape"}


def _per_channel(values, channels: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.broadcast_to(np.asarray(values, dtype=np.int64), (channels,)))


def _layer(graph: Graph, index: int, layer, memory) -> dict:
    if layer.op not in SUPPORTED:
        raise UserError(f"layer '{layer.name}': op '{layer.op}' has no MicroPython kernel")
    if layer.op == "add" and (layer.constant is not None
                              or any(graph.tensors[t].shape != tuple(layer.output_shape) for t in layer.inputs)):
        raise UserError(f"layer '{layer.name}': op 'add' with a broadcast or constant operand has no MicroPython "
                        f"kernel (only {LIMITS['add']})")
    loc = lambda t: memory.locations[t]  # noqa: E731
    out_q = graph.tensors[layer.output].quant
    lo, hi = clamp_range(graph, layer) if hasattr(layer, "activation") else (-128, 127)
    ctx = dict(index=index, op=layer.op, name=codegen.c_comment(layer.name), lo=lo, hi=hi, out_zp=out_q.zero_point,
               ins=[loc(t) for t in layer.inputs], out=loc(layer.output), in_shape=tuple(layer.input_shape),
               out_shape=tuple(layer.output_shape), out_size=int(np.prod(layer.output_shape)),
               offsets=[input_offset(graph, layer, i) for i in range(len(layer.inputs))])
    if layer.op in ("conv2d", "depthwise_conv2d", "fully_connected"):
        channels = layer.output_shape[-1]
        ctx.update(weights=repr(np.ascontiguousarray(layer.qkernel, dtype=np.int8).tobytes()),
                   bias=repr(np.asarray(layer.qbias, dtype="<i4").tobytes()),
                   mult=_per_channel(layer.requant.multiplier, channels),
                   shift=_per_channel(layer.requant.shift, channels))
    if layer.op in ("conv2d", "depthwise_conv2d"):
        ctx.update(kernel=layer.kernel_size, strides=layer.strides, dilation=layer.dilation, pads=layer.pads())
        if layer.op == "depthwise_conv2d":
            ctx.update(dm=layer.depth_multiplier)
    elif layer.op in ("max_pool2d", "avg_pool2d"):
        ctx.update(kernel=tuple(layer.pool_size), strides=tuple(layer.strides), dilation=(1, 1), pads=layer.pads())
    elif layer.op == "mean":
        ctx.update(count=layer.count, requant=layer.folded_requant(), in_zp=-ctx["offsets"][0])
    elif layer.op == "add":
        ctx.update(left_shift=layer.left_shift,
                   rq=[(int(r.multiplier[0]), int(r.shift[0])) for r in (layer.input1_requant, layer.input2_requant,
                                                                        layer.output_requant)])
    elif layer.op == "softmax":
        ctx.update(multiplier=layer.input_multiplier, left_shift=layer.input_left_shift, diff_min=layer.diff_min)
    elif layer.op == "pad":
        ctx.update(paddings=layer.paddings, value=layer.value)
    return ctx


def render_python(graph: Graph, prefix: str) -> dict[str, str]:
    """{"<prefix>.py": ..., "<prefix>_viper.py": ...}."""
    codegen.check_prefix(prefix)
    memory = plan(graph)
    layers = [_layer(graph, i, layer, memory) for i, layer in graph.computed_layers()]
    weighted = [ctx for ctx in layers if "weights" in ctx]
    i, o = graph.tensors[graph.input], graph.tensors[graph.output]
    context = dict(version=__version__, prefix=prefix, layers=layers, weighted=weighted, arena_size=memory.arena_size,
                   acc_size=max([ctx["out_size"] for ctx in weighted], default=0), input=i, output=o,
                   input_scale=repr(float(np.float32(i.quant.scale))),
                   output_scale=repr(float(np.float32(o.quant.scale))),
                   source=codegen.c_comment(graph.source), sha=(graph.source_sha256 or "no digest")[:12],
                   has_softmax=any(ctx["op"] == "softmax" for ctx in layers), exp_barrel=fp._EXP_BARREL,
                   softmax_bits=(fp.SOFTMAX_DIFF_INTEGER_BITS, fp.SOFTMAX_SUM_INTEGER_BITS, fp.SOFTMAX_OUTPUT_BITS))
    env = codegen.environment()
    return {f"{prefix}.py": env.get_template("micropython/module.py.j2").render(context),
            f"{prefix}_viper.py": env.get_template("micropython/viper.py.j2").render(context)}
