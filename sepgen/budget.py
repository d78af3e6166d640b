"""Per-layer budgets: MACs, parameters, flash, scratch RAM, and standard-convolution equivalents.

Units used throughout:

* ``macs``: multiply-accumulates per inference (batch 1), as :meth:`sepgen.ir.Layer.macs` counts them.
* ``params``: parameters as Keras ``count_params()`` counts them (BatchNormalization already folded).
* ``flash_bytes``: constant bytes once quantized (:meth:`sepgen.ir.Layer.weight_bytes`: int8 weights,
  int32 bias, int32 multiplier + int8 shift per output channel).
* ``scratch_bytes``: extra RAM bytes a kernel needs besides its input and output tensors.
* ``ram_bytes`` (totals only): the static arena in bytes, ``<PREFIX>_ARENA_SIZE``.

Every figure here depends on shapes only, so a float graph and its int8 twin have the same budget.

``standard_params``/``standard_macs`` answer "what would a standard Conv2D with the same kernel
size and output cost?":

(a) A DepthwiseConv2D whose output is consumed only by a 1x1 stride-1 Conv2D (the pointwise) forms
    a depthwise-separable block.  Its standard equivalent is a kh x kw Conv2D from the depthwise's
    input channels to the pointwise's output channels, with the pointwise's output size and the
    pointwise's bias (a depthwise bias, if any, has no counterpart in it).
(b) A standalone DepthwiseConv2D: a kh x kw Conv2D from C_in to C_in * depth_multiplier channels,
    same output size, with a bias if the depthwise has one.
(c) A Conv2D k x 1 (k > 1) whose output is consumed only by a Conv2D 1 x k (or 1 x k then k x 1)
    forms a spatially separable pair.  Its standard equivalent is a k x k Conv2D from the first's
    input channels to the second's output channels, with the second's output size and bias.
(d) Every other layer: its own figures.

For a block (a or c), the block's standard figures sit on the block's FIRST row and the second row
carries 0, so that column totals add up; both rows carry the same ``block`` label ("sep1", ...).

Every graph layer gets a row, including Reshape/Flatten (all zeros; they alias their input): the
table then mirrors the graph one to one, and ``len(budget.layers) == len(graph.layers)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph, Layer
from .ops import Conv2D, DepthwiseConv2D, WeightedLayer

DEPTHWISE_SEPARABLE = "depthwise_separable"
SPATIALLY_SEPARABLE = "spatially_separable"


@dataclass(frozen=True)
class LayerBudget:
    """One graph layer's figures (see the module docstring for units and the ``standard_*`` rules)."""

    name: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int  # per inference
    standard_params: int
    standard_macs: int  # per inference
    flash_bytes: int
    scratch_bytes: int
    block: str | None = None  # label of the separable block this layer belongs to, if any
    weight_bytes: int = 0  # of flash_bytes: the int8 weights
    bias_bytes: int = 0  # of flash_bytes: the int32 bias; the rest is requantization (multipliers, shifts)

    @property
    def requant_bytes(self) -> int:
        """Of ``flash_bytes``: what is neither weights nor bias (per-channel multipliers and shifts)."""
        return self.flash_bytes - self.weight_bytes - self.bias_bytes


class _Savings:
    """standard_* / own figures: how many times fewer MACs and parameters (inf when own is 0)."""

    standard_macs: int
    macs: int
    standard_params: int
    params: int

    @property
    def mac_saving(self) -> float:
        return _ratio(self.standard_macs, self.macs)

    @property
    def param_saving(self) -> float:
        return _ratio(self.standard_params, self.params)


@dataclass(frozen=True)
class Block(_Savings):
    """A separable block (two layers) next to the one standard Conv2D it replaces.

    ``kind`` is :data:`DEPTHWISE_SEPARABLE` or :data:`SPATIALLY_SEPARABLE`; ``standard`` describes
    the equivalent convolution, e.g. ``"conv2d 3x3, 3 -> 10 channels"`` (``"conv1d 5, ..."`` over a sequence).
    """

    label: str
    kind: str
    layers: tuple[str, str]
    kernel_size: tuple[int, int]
    in_channels: int
    out_channels: int
    params: int
    macs: int  # per inference, both layers
    standard_params: int
    standard_macs: int  # per inference
    one_d: bool = False  # over a sequence (a height-1 map and a 1 x k kernel): the standard is a Conv1D

    @property
    def standard(self) -> str:
        kh, kw = self.kernel_size
        window = f"conv1d {kw}" if self.one_d else f"conv2d {kh}x{kw}"
        return f"{window}, {self.in_channels} -> {self.out_channels} channels"


@dataclass(frozen=True)
class Totals(_Savings):
    """Sums over all layers, plus the arena RAM (``ram_bytes``) of the whole model."""

    params: int
    macs: int  # per inference
    standard_params: int
    standard_macs: int  # per inference
    flash_bytes: int
    ram_bytes: int  # == <PREFIX>_ARENA_SIZE
    max_scratch_bytes: int = 0  # largest per-layer scratch (informational; layers run one at a time)


@dataclass(frozen=True)
class Budget:
    """The budget of one graph: a row per layer (graph order), the separable blocks, and totals."""

    model: str
    layers: tuple[LayerBudget, ...]
    blocks: tuple[Block, ...]
    totals: Totals
    source: str = "<memory>"
    quantizer: str = "none"
    prefix: str = "model"  # the C prefix: RAM is the header's ``<PREFIX>_ARENA_SIZE`` (see :attr:`arena_macro`)

    @property
    def arena_macro(self) -> str:
        """The header macro holding ``totals.ram_bytes``, e.g. ``KWS_ARENA_SIZE`` for prefix ``kws``."""
        return arena_macro(self.prefix)

    def block(self, label: str) -> Block:
        for b in self.blocks:
            if b.label == label:
                return b
        raise KeyError(label)

    def layer(self, name: str) -> LayerBudget:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)


def arena_macro(prefix: str) -> str:
    """The name of the generated header's arena-size macro for ``prefix`` (``<PREFIX>_ARENA_SIZE``)."""
    return f"{prefix.upper()}_ARENA_SIZE"


def _ratio(standard: int, own: int) -> float:
    return standard / own if own else (1.0 if standard == 0 else float("inf"))


def _conv_cost(out_shape: tuple[int, ...], kh: int, kw: int, cin: int, cout: int, bias: bool) -> tuple[int, int]:
    """(params, MACs per inference) of a standard Conv2D producing ``out_shape`` (H, W, cout)."""
    oh, ow = int(out_shape[0]), int(out_shape[1])
    weights = kh * kw * cin * cout
    return weights + (cout if bias else 0), oh * ow * weights


def _sole_consumer(graph: Graph, layer: Layer) -> Layer | None:
    """The one layer reading ``layer``'s output, or None (several readers, or it is the model output)."""
    if layer.output == graph.output:
        return None
    readers = graph.consumers(layer.output)
    return readers[0] if len(readers) == 1 else None


def _find_block(graph: Graph, first: Layer) -> tuple[str, Layer, tuple[int, int]] | None:
    """If ``first`` starts a separable block, return (kind, second layer, standard kernel size)."""
    second = _sole_consumer(graph, first)
    if not isinstance(second, Conv2D) or second.inputs != (first.output,):
        return None
    if isinstance(first, DepthwiseConv2D):
        if second.is_pointwise:
            return DEPTHWISE_SEPARABLE, second, first.kernel_size
        return None
    if type(first) is Conv2D and first.dilation == (1, 1) and second.dilation == (1, 1):
        (h1, w1), (h2, w2) = first.kernel_size, second.kernel_size
        if h1 > 1 and w1 == 1 and (h2, w2) == (1, h1):  # k x 1 then 1 x k
            return SPATIALLY_SEPARABLE, second, (h1, h1)
        if h1 == 1 and w1 > 1 and (h2, w2) == (w1, 1):  # 1 x k then k x 1
            return SPATIALLY_SEPARABLE, second, (w1, w1)
    return None


def _row(layer: Layer, standard_params: int, standard_macs: int, block: str | None = None) -> LayerBudget:
    weights = bias = 0
    if isinstance(layer, WeightedLayer):
        weights = int(layer.kernel.size)
        bias = 0 if layer.bias is None else 4 * int(layer.out_channels)
    return LayerBudget(name=layer.name, op=layer.op, input_shape=tuple(int(d) for d in layer.input_shape),
                       output_shape=tuple(int(d) for d in layer.output_shape), params=int(layer.params()),
                       macs=int(layer.macs()), standard_params=int(standard_params),
                       standard_macs=int(standard_macs), flash_bytes=int(layer.weight_bytes()),
                       scratch_bytes=int(layer.scratch_bytes()), block=block, weight_bytes=weights, bias_bytes=bias)


def budget(graph: Graph, arena_bytes: int | None = None, prefix: str = "model") -> Budget:
    """Compute the budget of ``graph`` (float or int8; figures depend on shapes only).

    ``arena_bytes`` is the model's static RAM in bytes (``<PREFIX>_ARENA_SIZE``); when None it is
    computed with :func:`sepgen.plan.plan`.  ``prefix`` is the C prefix the reports name macros with.
    """
    rows: dict[str, LayerBudget] = {}
    blocks: list[Block] = []
    for layer in graph.layers:
        if layer.name in rows:  # already the second layer of a block
            continue
        found = _find_block(graph, layer) if isinstance(layer, (Conv2D, DepthwiseConv2D)) else None
        if found is not None:
            kind, second, (kh, kw) = found
            cin, cout = int(layer.input_shape[-1]), int(second.output_shape[-1])
            std_params, std_macs = _conv_cost(second.output_shape, kh, kw, cin, cout, second.bias is not None)
            label = f"sep{len(blocks) + 1}"
            rows[layer.name] = _row(layer, std_params, std_macs, label)
            rows[second.name] = _row(second, 0, 0, label)
            blocks.append(Block(label=label, kind=kind, layers=(layer.name, second.name), kernel_size=(kh, kw),
                                in_channels=cin, out_channels=cout,
                                params=rows[layer.name].params + rows[second.name].params,
                                macs=rows[layer.name].macs + rows[second.name].macs,
                                standard_params=std_params, standard_macs=std_macs,
                                one_d=kh == 1 and len(layer.input_shape) == 3 and layer.input_shape[0] == 1))
        elif isinstance(layer, DepthwiseConv2D):
            kh, kw = layer.kernel_size
            cin = int(layer.input_shape[-1])
            std_params, std_macs = _conv_cost(layer.output_shape, kh, kw, cin, cin * layer.depth_multiplier,
                                              layer.bias is not None)
            rows[layer.name] = _row(layer, std_params, std_macs)
        else:
            rows[layer.name] = _row(layer, layer.params(), layer.macs())
    layers = tuple(rows[layer.name] for layer in graph.layers)
    if arena_bytes is None:
        from .plan import plan  # lazy: the planner is not needed when the caller knows the arena

        arena_bytes = plan(graph).arena_size
    totals = Totals(params=sum(r.params for r in layers), macs=sum(r.macs for r in layers),
                    standard_params=sum(r.standard_params for r in layers),
                    standard_macs=sum(r.standard_macs for r in layers),
                    flash_bytes=sum(r.flash_bytes for r in layers), ram_bytes=int(arena_bytes),
                    max_scratch_bytes=max((r.scratch_bytes for r in layers), default=0))
    return Budget(model=graph.name, layers=layers, blocks=tuple(blocks), totals=totals, source=graph.source,
                  quantizer=graph.quantizer, prefix=prefix)

