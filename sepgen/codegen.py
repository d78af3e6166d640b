"""C code generation: one Jinja environment, filters, render(graph) -> {filename: text}.

Templates live in the top-level ``templates/`` directory (shipped in the wheel as
``sepgen/templates``).  A layer's template is ``layers/<op>.c.j2``, found from the
layer's ``op``; there is no hand-kept table.  Python only prepares numbers (shapes,
offsets, quantization parameters, proven bounds); every line of C is in a template.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np

from . import __version__
from .bounds import prove_no_overflow
from .errors import UserError
from . import ops  # noqa: F401  (registers the op classes)
from .ir import LAYER_TYPES, Graph, Layer, UnsupportedLayer
from .plan import plan
from .schedule import Schedule, is_reducer, schedule as make_schedule
from .quantize import activation_range
from .targets import PORTABLE, variants

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert
_Thread_local""".split())
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class InvalidIdentifier(UserError):
    """A name that cannot be used as (part of) a C identifier."""


def c_ident(name: str) -> str:
    """Return ``name`` if it is a valid, non-reserved C identifier; raise InvalidIdentifier otherwise."""
    if not isinstance(name, str) or not _IDENT.match(name) or name in C_KEYWORDS or name.startswith("__"):
        raise InvalidIdentifier(f"'{name}' is not a valid C identifier (need [A-Za-z_][A-Za-z0-9_]*, "
                                "not a C keyword, not starting with '__')")
    return name


#: Longest --prefix: C99 guarantees 31 significant characters in external identifiers, and the longest
#: external symbol sepgen emits is ``<prefix>_invoke``.
MAX_PREFIX = 24


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can name the generated files and prefix every C symbol; else InvalidIdentifier.

    Allowed: a letter, then letters, digits and '_', at most :data:`MAX_PREFIX` characters; not a C
    keyword; not ``sepgen``/``sepgen_*`` (any case), which names sepgen's own headers and helpers.
    A leading underscore is refused: ``_x`` would give the reserved identifier ``_X_H``.
    """
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefix):
        raise InvalidIdentifier(f"prefix {str(prefix)[:40]!r}: use a letter followed by letters, digits or '_' "
                                "(it names the files and starts every C symbol)")
    if len(prefix) > MAX_PREFIX:
        raise InvalidIdentifier(f"prefix '{prefix[:40]}...': {len(prefix)} characters; at most {MAX_PREFIX} "
                                "(C99 keeps 31 significant characters of '<prefix>_invoke')")
    if prefix in C_KEYWORDS:
        raise InvalidIdentifier(f"prefix '{prefix}' is a C keyword")
    if prefix.lower() == "sepgen" or prefix.lower().startswith("sepgen_"):
        raise InvalidIdentifier(f"prefix '{prefix}' is reserved: 'sepgen_*' names sepgen's own files and helpers")
    return prefix


def c_comment(text: str) -> str:
    """Make arbitrary text (layer names, paths) safe inside a C block comment: printable ASCII, no '*/'."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return safe.replace("*/", "*_/").replace("/*", "/_*").replace("??", "?_?")


def c_int_array(values, per_line: int = 16, indent: str = "    ") -> str:
    """Body of a C initializer list for integers (int32 minimum spelled without overflow)."""
    flat = np.asarray(values).astype(np.int64).ravel()
    items = [str(v) if v != -(1 << 31) else "(-2147483647 - 1)" for v in flat.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return (",\n" + indent).join(lines)


def data_dir(installed: str, repository: str, marker: str) -> Path:
    """Shipped data: ``sepgen/<installed>`` in an installed wheel, else ``<repository>/`` of a checkout.

    ``marker`` is a file that must be inside; a missing directory means a broken installation.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / installed, here.parent / repository):
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"sepgen {repository}/ not found (broken installation)")


def templates_dir() -> Path:
    """``sepgen/templates`` in an installed wheel, else the repository's ``templates/``."""
    return data_dir("templates", "templates", "model.c.j2")


def _op_template_dirs() -> tuple[str, ...]:
    """Template directories of ops defined outside the package (``Layer.template_dir``)."""
    return tuple(sorted({str(cls.template_dir) for cls in LAYER_TYPES.values() if cls.template_dir}))


def environment() -> jinja2.Environment:
    """The one Jinja environment: the shipped templates, then the template directories of ops
    defined outside the package."""
    return _environment(_op_template_dirs())


@lru_cache(maxsize=8)
def _environment(extra_dirs: tuple[str, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(templates_dir())),
                                    *(jinja2.FileSystemLoader(d) for d in extra_dirs)]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(c_ident=c_ident, c_comment=c_comment, c_int_array=c_int_array)
    return env


class Emitted:
    """The shared C blocks already written into one C file, by name (the registry ``emitted`` of a render).

    Layer templates wrap C that several layers share (helpers, requantization and block functions) in
    ``once(name)`` (``templates/layers/_once.c.j2``): with a registry in the render's context the block is
    written the first time its name is asked, where the first layer using it needs it, and skipped afterwards;
    without one (a template rendered on its own) it is always written inside its C guard macro."""

    def __init__(self) -> None:
        self._names: set[str] = set()

    def first(self, name: str) -> bool:
        """True the first time ``name`` is asked (write the block), False every later time."""
        if name in self._names:
            return False
        self._names.add(name)
        return True


@dataclass(frozen=True)
class LayerContext:
    """Everything a layer template needs, computed once in Python."""

    index: int
    layer: Layer
    template: str  # the kernel template chosen for the target
    fn: str  # C function name, also the prefix of this layer's constant arrays
    input_offsets: tuple[int, ...]  # -zero_point of each input
    output_zero_point: int
    act_min: int
    act_max: int
    bound: int  # proven max |int32| intermediate
    variant: str = PORTABLE  # the kernel variant the template implements
    kernel: dict = field(default_factory=dict)  # the variant's generation-time constants (Layer.kernel_context)
    pad_top: int = 0
    pad_left: int = 0
    check_y: bool = False  # an input row index can leave the image
    check_x: bool = False
    ring_in: int = 0  # row kernels (sepgen.schedule): rows of the input's ring, 0 = the whole tensor
    ring_out: int = 0
    rows_in: str = ""  # row kernels: the input's row offset table (rows placed one by one, sepgen.rowplace), or ""
    rows_out: str = ""
    reducer: bool = False  # a row kernel summing its input rows (global pool / mean, sepgen.schedule)
    rows: bool = False  # a row kernel (streamed chain): the function computes output rows [row_begin, row_end)


def _edges(in_size: int, out_size: int, kernel: int, stride: int, dilation: int, pad: int) -> bool:
    """True if some window of this axis reaches outside [0, in_size)."""
    last = (out_size - 1) * stride - pad + (kernel - 1) * dilation
    return pad > 0 or last >= in_size


def kernel_variant(env: jinja2.Environment, layer: Layer, target: str, graph: Graph) -> tuple[str, str]:
    """(variant, template) that renders ``layer`` for ``target``: the first of the target's variants this
    layer instance can use (:meth:`Layer.instance_kernels`, :mod:`sepgen.targets`), else its portable kernel."""
    templates = layer.instance_kernels(graph)
    known = set(env.list_templates())
    for variant in variants(target):
        name = templates.get(variant)
        if name is not None and name in known:
            return variant, name
    raise UnsupportedLayer(layer.name, f"op '{layer.op}'", f"no kernel template (expected {templates[PORTABLE]})")


def row_kernel_variant(env: jinja2.Environment, layer: Layer, target: str, graph: Graph) -> tuple[str, str]:
    """(variant, template) of ``layer``'s row kernel inside a streamed chain: the first of the target's variants
    that this layer instance can use whole (:meth:`Layer.instance_kernels`) and that has a row kernel
    (:meth:`Layer.row_kernel_templates`), else the portable ``layers/<op>.rows.c.j2``."""
    whole = layer.instance_kernels(graph)
    rows = type(layer).row_kernel_templates()
    known = set(env.list_templates())
    for variant in variants(target):
        name = rows.get(variant)
        if variant in whole and name is not None and name in known:
            return variant, name
    raise UnsupportedLayer(layer.name, f"op '{layer.op}'", f"no row kernel template (expected {rows[PORTABLE]})")


def kernel_template(env: jinja2.Environment, layer: Layer, target: str, graph: Graph) -> str:
    """The template that renders ``layer`` for ``target`` (see :func:`kernel_variant`)."""
    return kernel_variant(env, layer, target, graph)[1]


def _layer_context(graph: Graph, index: int, layer: Layer, prefix: str, bound: int,
                   chosen: tuple[str, str], rows: bool = False) -> LayerContext:
    out_q = graph.tensors[layer.output].quant
    act_min, act_max = activation_range(out_q, getattr(layer, "activation", "none"))
    base = f"{prefix}_layer{index}_{layer.op}"
    extra = {}
    if hasattr(layer, "pads"):
        kernel = getattr(layer, "pool_size", None) or layer.kernel_size
        dilation = getattr(layer, "dilation", (1, 1))
        pad_top, pad_left = layer.pads()
        extra = dict(pad_top=pad_top, pad_left=pad_left,
                     check_y=_edges(layer.input_shape[0], layer.output_shape[0], kernel[0], layer.strides[0],
                                    dilation[0], pad_top),
                     check_x=_edges(layer.input_shape[1], layer.output_shape[1], kernel[1], layer.strides[1],
                                    dilation[1], pad_left))
    variant, template = chosen
    return LayerContext(index=index, layer=layer, template=template, fn=c_ident(base), variant=variant,
                        kernel=(layer.row_kernel_context if rows else layer.kernel_context)(graph, variant),
                        rows=rows,
                        input_offsets=tuple(-graph.tensors[t].quant.zero_point for t in layer.inputs),
                        output_zero_point=out_q.zero_point, act_min=act_min, act_max=act_max, bound=bound, **extra)


def _stream_calls(graph: Graph, sched: Schedule, prefix: str, bounds: dict[str, int], env: jinja2.Environment,
                  target: str) -> tuple[list[LayerContext], list[dict], list[dict]]:
    """Layer contexts, invoke() calls and row offset tables of a schedule: a streamed stage becomes one step
    loop over row kernels (:func:`row_kernel_variant`), the other layers their usual kernel.  A
    tensor placed row by row (``sched.row_offsets``) gets a table: entry y = arena byte offset of row y."""
    layers, calls = [], []
    tables = {graph.layers[i].output: c_ident(f"{prefix}_layer{i}_rows") for st in sched.streams.values()
              for i in st.layers[:-1] if graph.layers[i].output in sched.row_offsets}
    ctype = "uint16_t" if sched.arena_size <= 0xFFFF else "int32_t"  # both promote to int: no sign conversions
    row_tables = [dict(name=name, tensor=t, ctype=ctype, offsets=[max(o, 0) for o in sched.row_offsets[t]])
                  for t, name in tables.items()]
    for number, stage in enumerate(sched.stages):
        st = sched.streams.get(number)
        if st is None:
            (i,) = stage
            ctx = _layer_context(graph, i, graph.layers[i], prefix, bounds[graph.layers[i].name],
                                 kernel_variant(env, graph.layers[i], target, graph))
            layers.append(ctx)
            calls.append(dict(ctx=ctx, inputs=[sched.locations[t] for t in ctx.layer.inputs],
                              output=sched.locations[ctx.layer.output], size=graph.tensors[ctx.layer.output].size))
            continue
        rings = dict(zip(st.layers, st.rings))
        members = []
        for k, i in enumerate(st.layers):
            layer = graph.layers[i]
            base = _layer_context(graph, i, layer, prefix, bounds[layer.name],
                                  row_kernel_variant(env, layer, target, graph), rows=True)
            ctx = dataclasses.replace(base, fn=c_ident(base.fn + "_rows"), ring_in=rings.get(st.layers[k - 1], 0)
                                      if k else 0, ring_out=rings.get(i, 0), reducer=is_reducer(layer),
                                      rows_in=tables.get(layer.inputs[0], ""), rows_out=tables.get(layer.output, ""))
            layers.append(ctx)
            sum_loc = sched.locations.get(f"{layer.name}:sum")
            members.append(dict(ctx=ctx, input=sched.locations[layer.inputs[0]], output=sched.locations[layer.output],
                                sum_word=None if sum_loc is None else sum_loc.offset // 4))
        last = graph.layers[st.layers[-1]]
        calls.append(dict(stream=st, stage=number, members=members, ctx=members[-1]["ctx"],
                          output=sched.locations[last.output], size=graph.tensors[last.output].size,
                          row_type="uint8_t" if st.counts[-1] and max(st.counts[-1]) < 256 else "uint16_t"))
    return layers, calls, row_tables


def traced_layers(graph: Graph, schedule: str = "layer", reuse_input: bool = False) -> list[tuple[int, int]]:
    """(layer number, output size) of every layer the generated C traces, in call order: every computed
    layer, but inside a streamed chain only its last layer (the others never exist whole)."""
    sched = make_schedule(graph, schedule, reuse_input)
    hidden = {i for st in sched.streams.values() for i in st.layers[:-1]}
    return [(i, graph.tensors[layer.output].size) for i, layer in graph.computed_layers() if i not in hidden]


def render(graph: Graph, prefix: str = "model", target: str = "host", schedule: str = "layer",
           reuse_input: bool = False) -> dict[str, str]:
    """Render the C sources of a quantized graph for ``target`` (kernel variants, :mod:`sepgen.targets`) and
    ``schedule`` (``layer``, ``stream`` or ``auto``: :mod:`sepgen.schedule`); ``reuse_input``: the
    generated invoke() may overwrite its input buffer once read (said in the header).

    Returns {filename: text}; deterministic."""
    check_prefix(prefix)
    env = environment()
    if not graph.is_quantized:
        raise UserError(f"model '{graph.name}' is not quantized; quantize it first (sepgen.quantize)")
    bounds = prove_no_overflow(graph)
    sched = make_schedule(graph, schedule, reuse_input)
    if sched.streamed or reuse_input:
        layers, calls, row_tables = _stream_calls(graph, sched, prefix, bounds, env, target)
        memory = sched
    else:
        memory, row_tables = plan(graph), []
        layers = [_layer_context(graph, i, layer, prefix, bounds[layer.name],
                                 kernel_variant(env, layer, target, graph))
                  for i, layer in graph.computed_layers()]
        calls = [dict(ctx=ctx, inputs=[memory.locations[t] for t in ctx.layer.inputs],
                      output=memory.locations[ctx.layer.output],
                      size=graph.tensors[ctx.layer.output].size) for ctx in layers]
    in_spec, out_spec = graph.tensors[graph.input], graph.tensors[graph.output]
    context = dict(
        version=__version__, graph=graph, prefix=prefix, PREFIX=prefix.upper(), layers=layers, calls=calls,
        row_tables=row_tables,
        arena_size=memory.arena_size, input=in_spec, output=out_spec, streamed=sched.streamed,
        schedule=schedule, reuse_input=reuse_input,
        source=graph.source, sha=(graph.source_sha256 or "no digest")[:12],
    )
    files = {
        f"{prefix}.h": env.get_template("model.h.j2").render(context),
        f"{prefix}.c": env.get_template("model.c.j2").render(context, emitted=Emitted()),
        "sepgen_fixedpoint.h": (templates_dir() / "sepgen_fixedpoint.h").read_text(),
    }
    return files


HARNESSES = ("host", "cortexm")


def schedule_of(files: dict[str, str], prefix: str) -> tuple[str, bool]:
    """(schedule, reuse_input) that generated ``files``, read from the header's ``<PREFIX>_SCHEDULE`` and
    ``<PREFIX>_REUSES_INPUT`` (absent: the layer schedule, input read only)."""
    header = files.get(f"{prefix}.h", "")
    found = re.search(rf'^#define {prefix.upper()}_SCHEDULE "(\w+)"$', header, re.M)
    return (found.group(1) if found else "layer",
            re.search(rf"^#define {prefix.upper()}_REUSES_INPUT 1$", header, re.M) is not None)


def render_harness(graph: Graph, prefix: str = "model", harness: str = "host", schedule: str = "layer",
                   reuse_input: bool = False) -> str:
    """A test program for the generated C, built with ``-D<PREFIX>_TRACE``: ``harness/<harness>.c.j2``.

    "host" reads N inputs from a file and writes every computed layer's output and the output buffer;
    "cortexm" does the same through semihosting (and, with -DSEPGEN_PROFILE, SysTick stamps per layer).
    Both check that ``<prefix>_trace`` is called with exactly the layer numbers of :func:`traced_layers`
    (:meth:`Graph.computed_layers` under the layer schedule), in order, with each layer's output size.
    """
    if harness not in HARNESSES:
        raise ValueError(f"unknown harness '{harness}' (choose from {', '.join(HARNESSES)})")
    return environment().get_template(f"harness/{harness}.c.j2").render(
        prefix=c_ident(prefix), PREFIX=prefix.upper(), version=__version__,
        traced=traced_layers(graph, schedule, reuse_input))

