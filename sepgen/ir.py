"""The intermediate representation: a graph of typed layers over named tensors.

Conventions used everywhere in sepgen:

* Activations are NHWC with batch 1; a tensor's ``shape`` omits the batch, so a
  feature map is ``(height, width, channels)`` and a vector is ``(features,)``.
* A float graph carries float32 weights in Keras layout (conv kernels HWIO,
  depthwise kernels ``(kh, kw, in_channels, depth_multiplier)``, dense kernels
  ``(in, out)``).  A quantized graph carries, in addition, int8 weights in the
  TFLite layout (conv OHWI, depthwise ``(1, kh, kw, in_channels*depth_multiplier)``,
  dense ``(out, in)``), int32 biases and a :class:`Requant` per output channel.
* ``Requant.shift`` follows TFLite: positive = left shift, negative = right shift (stored as int8 in C).

The classes are frozen dataclasses with no I/O.  ``dataclasses.replace`` is how
the quantizer derives an int8 layer from a float one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .errors import UserError

PADDINGS = ("same", "valid")
ACTIVATIONS = ("none", "relu", "relu6")


class UnsupportedLayer(UserError):
    """A layer (or layer option) sepgen cannot compile.  Carries the layer name and kind."""

    def __init__(self, name: str, kind: str, detail: str = "") -> None:
        self.name, self.kind, self.detail = name, kind, detail
        msg = f"layer '{name}': unsupported {kind}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class QuantParams:
    """Affine int8 quantization: real = scale * (q - zero_point).  ``scale`` is a float32 value."""

    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(np.float32(self.scale)))
        object.__setattr__(self, "zero_point", int(self.zero_point))


@dataclass(frozen=True, eq=False)
class Requant:
    """Per-output-channel fixed-point rescale: Q31 ``multiplier`` and TFLite ``shift`` (+ = left)."""

    multiplier: np.ndarray  # int32, shape (channels,)
    shift: np.ndarray  # int32 values in [-31, 30], shape (channels,); emitted as an int8 array in C


@dataclass(frozen=True)
class TensorSpec:
    """A named activation tensor; ``shape`` excludes the batch (HWC or (features,))."""

    name: str
    shape: tuple[int, ...]
    quant: QuantParams | None = None
    #: Index of this tensor in the source file (a .tflite tensor index), for comparing with TFLM.
    source_index: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def conv_output_size(in_size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """Output length and leading pad for one spatial axis, as TFLite computes them.

    'same' gives ceil(in/stride) outputs; the total padding is split with the odd
    pixel at the end (bottom/right), as TensorFlow does.  Returns (out, pad_before).
    """
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - effective + stride) // stride
    if out <= 0:
        raise ValueError(f"window {effective} larger than input {in_size}")
    total = max((out - 1) * stride + effective - in_size, 0)
    return out, total // 2


def unique_name(base: str, taken) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``taken`` (names of layers, tensors)."""
    unique, n = base, 1
    while unique in taken:
        n += 1
        unique = f"{base}_{n}"
    return unique


#: op name -> Layer subclass, filled as op classes are defined (see :meth:`Layer.__init_subclass__`).
LAYER_TYPES: dict[str, type["Layer"]] = {}


@dataclass(frozen=True, eq=False)
class Layer:
    """Base of every op: one output tensor, named input tensors, fixed shapes.

    An op is one subclass (in :mod:`sepgen.ops`, or anywhere: defining the class registers it) that
    owns everything about itself: its typed fields, shape inference (:meth:`infer_shape`), budget
    figures, quantization (:meth:`quantized`), the accumulator bound, the float and int8 simulator
    functions (:meth:`run_float`, :meth:`run_int8`) and its C kernel templates per variant
    (:attr:`kernels`, :attr:`template_dir`).  Nothing else in sepgen switches on the op.
    """

    op: ClassVar[str] = "layer"
    #: True when the output shares the input's bytes (no code is generated).
    aliases_input: ClassVar[bool] = False
    #: Kernel template per variant ("portable" is the reference, always present); default
    #: ``{"portable": "layers/<op>.c.j2"}``.  Targets pick variants (:mod:`sepgen.targets`).
    kernels: ClassVar[dict[str, str]] = {}
    #: Row-kernel template per variant, for layers inside a streamed chain (:mod:`sepgen.schedule`): a row kernel
    #: computes output rows [row_begin, row_end), its input and output possibly rings of rows.  Default
    #: ``{"portable": "layers/<op>.rows.c.j2"}``; a variant usually names its whole-tensor template, which renders
    #: the row kernel when ``ctx.rows`` is set, so both schedules run the same arithmetic.
    row_kernels: ClassVar[dict[str, str]] = {}
    #: Extra directory searched for this op's templates (for ops defined outside the package).
    template_dir: ClassVar[str | None] = None

    name: str
    inputs: tuple[str, ...]
    output: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "op" in cls.__dict__:
            LAYER_TYPES[cls.op] = cls

    @classmethod
    def kernel_templates(cls) -> dict[str, str]:
        return {"portable": f"layers/{cls.op}.c.j2", **cls.kernels}

    @classmethod
    def row_kernel_templates(cls) -> dict[str, str]:
        return {"portable": f"layers/{cls.op}.rows.c.j2", **cls.row_kernels}

    def instance_kernels(self, graph: "Graph") -> dict[str, str]:
        """The kernel templates usable for this layer instance in ``graph`` (default: all of the op's
        :meth:`kernel_templates`).  An op whose variant covers only some shapes or integer ranges (e.g. a
        pointwise-only kernel of conv2d) leaves it out here; the target then falls back to the next one."""
        return type(self).kernel_templates()

    def kernel_context(self, graph: "Graph", variant: str) -> dict:
        """Generation-time constants a kernel variant's template needs beyond the layer's own fields
        (folded biases, specialised requantization), as ``ctx.kernel``; default none."""
        return {}

    def row_kernel_context(self, graph: "Graph", variant: str) -> dict:
        """:meth:`kernel_context` for the variant's row kernel (:attr:`row_kernels`); default the same."""
        return self.kernel_context(graph, variant)

    def stack_bytes(self, graph: "Graph", variant: str, rows: bool = False) -> int:
        """Bytes of the staging buffers a kernel variant declares on the stack (bounded at generation time; not
        in the arena, so not in ``scratch_bytes``); ``rows``: of its row kernel (the layer inside a streamed
        chain); default none."""
        return 0

    # ----------------------------------------------------------- shapes
    @classmethod
    def infer_shape(cls, input_shapes: list[tuple[int, ...]], **fields) -> tuple[int, ...]:
        """Output shape (batch excluded) for these inputs and fields; ValueError with the reason if invalid."""
        raise NotImplementedError(f"{cls.__name__}.infer_shape")

    # ----------------------------------------------------------- budget
    def macs(self) -> int:
        """Multiply-accumulates per inference."""
        return 0

    def params(self) -> int:
        """Trainable+non-trainable parameters as Keras ``count_params()`` counts them (after folding)."""
        return 0

    def weight_bytes(self) -> int:
        """Flash bytes of constants once quantized (int8 weights, int32 bias, int32 multiplier + int8 shift)."""
        return 0

    def scratch_bytes(self) -> int:
        """Extra RAM the kernel needs besides its input and output tensors (0: every kernel so far works in
        place of its output; variants with staging buffers override this)."""
        return 0

    # ----------------------------------------------------------- quantization
    def output_quant(self, input_quants: list["QuantParams"], calibrated: "QuantParams") -> "QuantParams":
        """The output tensor's quantization: by default the one chosen from the calibration range."""
        return calibrated

    def model_input_quant(self, rmin: float, rmax: float) -> "QuantParams | None":
        """The quantization this layer needs for the model input when it reads it, given the input's calibrated
        float range (e.g. a Rescaling folded into the input quantization); None (default): no requirement, the
        quantizer chooses it from the range as for any tensor."""
        return None

    def quantized(self, input_quants: list["QuantParams"], output_quant: "QuantParams") -> "Layer":
        """This layer with its integer parameters filled in (multipliers, int8 weights, ...)."""
        return self

    def accumulator_bound(self, graph: "Graph") -> int:
        """Largest |int32| any accumulator or pre-shifted value of the int8 kernel can reach."""
        return 0

    def check_integers(self, graph: "Graph") -> None:
        """Raise ValueError (reason) if an op-specific integer parameter is out of the kernels' range."""

    # ----------------------------------------------------------- simulation
    def run_float(self, xs: list[np.ndarray]) -> np.ndarray:
        """Float forward pass on NHWC batches (N,) + input shape."""
        raise NotImplementedError(f"{type(self).__name__}.run_float")

    def run_int8(self, graph: "Graph", xs: list[np.ndarray]) -> np.ndarray:
        """The int8 forward pass that the generated C must reproduce byte for byte."""
        raise NotImplementedError(f"{type(self).__name__}.run_int8")


_OP_CLASSES = ("Conv2D", "DepthwiseConv2D", "FullyConnected", "MaxPool2D", "AvgPool2D", "Mean", "Add", "Softmax",
               "Reshape", "Pad")


def __getattr__(name: str):
    """The op classes live in :mod:`sepgen.ops`; ``from sepgen.ir import Conv2D`` keeps working."""
    if name in _OP_CLASSES:
        from . import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'sepgen.ir' has no attribute '{name}'")


@dataclass(frozen=True, eq=False)
class Graph:
    """A model: layers in execution (topological) order over named tensors.

    ``tensors`` maps every tensor name to its spec; ``input``/``output`` name the
    model's single input and output tensors.  ``source`` names where it came from
    and ``source_sha256`` is the hex digest of the source bytes (for the C banner).
    """

    name: str
    layers: tuple[Layer, ...]
    tensors: dict[str, TensorSpec]
    input: str
    output: str
    source: str = "<memory>"
    source_sha256: str = ""
    quantizer: str = "none"  # "none" (float), "sepgen" or "tflite"

    @property
    def is_quantized(self) -> bool:
        return all(t.quant is not None for t in self.tensors.values())

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def computed_layers(self) -> list[tuple[int, Layer]]:
        """(index in ``layers``, layer) of every layer that computes its output: all but the layers that
        alias their input (Flatten/Reshape, no code).  These are the layers that the generated C calls
        and traces; the index is the layer number in the C (function names, ``TRACE_LAYER``)."""
        return [(index, layer) for index, layer in enumerate(self.layers) if not layer.aliases_input]

    def consumers(self, tensor: str) -> list[Layer]:
        return [layer for layer in self.layers if tensor in layer.inputs]

    def producer(self, tensor: str) -> Layer | None:
        for layer in self.layers:
            if layer.output == tensor:
                return layer
        return None

    def replace_layers(self, layers: list[Layer] | tuple[Layer, ...], **changes) -> "Graph":
        return dataclasses.replace(self, layers=tuple(layers), **changes)

    def validate(self) -> None:
        """Check topological order, shapes and single definition of every tensor."""
        defined = {self.input}
        for layer in self.layers:
            for name in layer.inputs:
                if name not in defined:
                    raise ValueError(f"layer '{layer.name}' reads '{name}' before it is computed")
            if layer.output in defined:
                raise ValueError(f"tensor '{layer.output}' is written twice")
            defined.add(layer.output)
            if self.tensors[layer.output].shape != tuple(layer.output_shape):
                raise ValueError(f"layer '{layer.name}': output shape mismatch")
        if self.output not in defined:
            raise ValueError(f"model output '{self.output}' is never computed")
