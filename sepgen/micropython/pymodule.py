"""The pure MicroPython backend: ``<prefix>.py`` (weights as bytes, the simulator's integer arithmetic) and
``<prefix>_viper.py`` (the multiply-accumulate loops, the pooling ops' loops and the requantization under
``@micropython.viper``, the latter sepgen.fixedpoint's arithmetic on machine words:
``templates/micropython/_requant.py.j2``); ``<prefix>.py`` falls back to plain-Python loops (the same sums, in a
form plain Python runs well) when that module cannot be imported, e.g. on a port without a native emitter.

Each op brings its own MicroPython kernel: the template of its ``"micropython"`` kernel variant
(``Layer.kernels``, ``templates/micropython/layers/<op>.py.j2``); an op without one is refused.  This module
only gives every kernel the same generic context (buffer locations from sepgen.plan, shapes, input offsets,
clamp, output zero point, the op's ``kernel_context`` for this variant as ``kernel``) and the helpers below; the
fixed-point primitives the kernels call are generated from sepgen.fixedpoint (:mod:`.pyfixedpoint`), the one
definition of the integer arithmetic.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import __version__, codegen, fixedpoint
from ..errors import UserError
from ..ir import Graph, Layer
from ..ops._common import clamp_range, fold_input_offset, input_offset
from ..plan import plan
from . import pyfixedpoint

#: The kernel variant that names an op's MicroPython template in its ``kernels``.
VARIANT = "micropython"
#: The most taps x input channels a conv2d window of the viper loops is unrolled over whole (its converted input
#: bytes then sit after the row's accumulators in ``_acc``: conv2d.py.j2, _pointwise.py.j2).
WINDOW_UNROLL = 64


def kernel_template(graph: Graph, layer: Layer) -> str:
    """The op's MicroPython kernel template; a UserError naming the layer if the op has none."""
    template = layer.instance_kernels(graph).get(VARIANT)
    if template is None:
        raise UserError(f"layer '{layer.name}': op '{layer.op}' has no MicroPython kernel "
                        f"(no '{VARIANT}' entry in its kernels)")
    return template


def _helpers(graph: Graph) -> dict:
    """Functions the kernel templates call to spell numbers as MicroPython literals."""
    def lut(layer: Layer) -> str:
        # the op's integer definition on every int8 value, indexed by the input's byte (0..255)
        x = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8).reshape(1, 256)
        return repr(np.asarray(layer.run_int8(graph, [x]), dtype=np.int8).reshape(256).tobytes())

    def pointwise_bias(layer: Layer, offset: int) -> np.ndarray | None:
        # templates/micropython/layers/_pointwise.py.j2: bias + (offset - 128) * each output channel's weight sum
        # (weights (C_out, ...)); None if a partial sum of that form could leave int32 (then the generic loops run)
        folded = fold_input_offset(layer.qbias, layer.qkernel.reshape(layer.qkernel.shape[0], -1), offset - 128)
        return None if folded is None else folded["folded_bias"]

    def pointwise(ctx: SimpleNamespace) -> bool:
        # a weighted layer whose window is one pixel (fully_connected, a 1x1 conv2d) with a foldable bias
        return (getattr(ctx.layer, "kernel_size", (1, 1)) == (1, 1)
                and pointwise_bias(ctx.layer, ctx.offsets[0]) is not None)

    def column_classes(layer: Layer) -> list[tuple[int, int]]:
        # the distinct (kx0, kx1) of the output columns as _window.py.j2 computes them: taps kx0 <= kx < kx1 of
        # the window are inside the image
        (_, kw), (_, iw), (_, left) = layer.kernel_size, layer.input_shape[:2], layer.pads()
        found = []
        for ox in range(layer.output_shape[1]):
            ix0, d = ox * layer.strides[1] - left, layer.dilation[1]
            kx0 = next((k for k in range(kw) if ix0 + k * d >= 0), kw)
            kx1 = next((k for k in range(kw, kx0, -1) if ix0 + (k - 1) * d < iw), kx0)
            if (kx0, kx1) not in found:
                found.append((kx0, kx1))
        return found

    def softmax_exps(layer: Layer) -> tuple[str, str]:
        # sepgen.fixedpoint.softmax_int8's exp (Q0.31) and its Rescale<12> (the sum's Q12.19) of every difference
        # to the row maximum, indexed by d = max - x (0..255, diff = -d) as int32 bytes; 0 where diff < diff_min
        diff = -np.arange(256, dtype=np.int64)
        valid = diff >= layer.diff_min
        exp, share = (np.where(valid, v, 0) for v in fixedpoint.softmax_exp(diff, layer.input_multiplier,
                                                                              layer.input_left_shift))
        return repr(exp.astype("<i4").tobytes()), repr(share.astype("<i4").tobytes())

    def offset_binary(a: np.ndarray) -> str:
        # int8 values as bytes of w + 128 (0..255)
        return repr((np.asarray(a, dtype=np.int16) + 128).astype(np.uint8).tobytes())

    return dict(pybytes=lambda a: repr(np.ascontiguousarray(a, dtype=np.int8).tobytes()),
                pyoffset_binary=offset_binary, pointwise_bias=pointwise_bias, pointwise=pointwise,
                column_classes=column_classes, window_unroll=WINDOW_UNROLL, softmax_exps=softmax_exps,
                pyint32=lambda a: repr(np.asarray(a, dtype="<i4").tobytes()),
                per_channel=lambda v, n: tuple(int(x) for x in np.broadcast_to(np.asarray(v, dtype=np.int64), (n,))),
                lut=lut, fp=pyfixedpoint.name, fpi=pyfixedpoint.inline, fpc=fixedpoint)


def _context(graph: Graph, index: int, layer: Layer, memory) -> SimpleNamespace:
    out_shape = tuple(layer.output_shape)
    rows = out_shape[0] if len(out_shape) == 3 else 1
    size = int(np.prod(out_shape))
    lo, hi = clamp_range(graph, layer) if hasattr(layer, "activation") else (-128, 127)
    return SimpleNamespace(
        index=index, layer=layer, op=layer.op, name=codegen.c_comment(layer.name), template=kernel_template(graph, layer),
        ins=[memory.locations[t] for t in layer.inputs], out=memory.locations[layer.output],
        in_shape=tuple(layer.input_shape), out_shape=out_shape, out_size=size, rows=rows, row=size // rows,
        offsets=[input_offset(graph, layer, i) for i in range(len(layer.inputs))], lo=lo, hi=hi,
        out_zp=graph.tensors[layer.output].quant.zero_point, kernel=layer.kernel_context(graph, VARIANT))


def render_python(graph: Graph, prefix: str) -> dict[str, str]:
    """{"<prefix>.py": ..., "<prefix>_viper.py": ...}."""
    codegen.check_prefix(prefix)
    memory = plan(graph)
    env = codegen.environment()
    helpers = _helpers(graph)
    layers, layers_code, macs, vipers, rows = [], [], [], [], [1]
    for index, layer in graph.computed_layers():
        ctx = _context(graph, index, layer, memory)
        layers.append(ctx)
        kernel = env.get_template(ctx.template).make_module(helpers)
        layers_code.append(str(kernel.layer(ctx)).strip("\n"))
        if hasattr(kernel, "mac_body"):  # a weighted op: its loops (or its viper_body) also go to the viper module
            body = kernel.viper_body(ctx) if hasattr(kernel, "viper_body") else kernel.mac_body(ctx)
            macs.append((ctx, str(body).rstrip("\n")))
            # the viper loops of 1x1 and small windows keep a window's converted input bytes after the row in _acc
            window = int(np.prod(getattr(layer, "kernel_size", (1, 1)))) * ctx.in_shape[-1]
            small = layer.op in ("conv2d", "fully_connected") and (window <= WINDOW_UNROLL or helpers["pointwise"](ctx))
            rows.append(ctx.row + (-(-window // 4) if small else 0))
        elif hasattr(kernel, "viper_def"):  # an op whose whole loops are one function of the viper module
            vipers.append((ctx, str(kernel.viper_def(ctx)).strip("\n")))
    i, o = graph.tensors[graph.input], graph.tensors[graph.output]
    context = dict(helpers, version=__version__, prefix=prefix, layers=layers, macs=macs, vipers=vipers,
                   layers_code=layers_code, arena_size=memory.arena_size, acc_size=max(rows), input=i, output=o,
                   input_scale=repr(float(np.float32(i.quant.scale))),
                   output_scale=repr(float(np.float32(o.quant.scale))),
                   source=codegen.c_comment(graph.source), sha=(graph.source_sha256 or "no digest")[:12])
    module, viper = env.get_template("micropython/module.py.j2"), env.get_template("micropython/viper.py.j2")
    draft = module.render(context, fixedpoint="")
    return {f"{prefix}.py": module.render(context, fixedpoint=pyfixedpoint.translate_used(draft)),
            f"{prefix}_viper.py": viper.render(context)}
