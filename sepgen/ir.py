"""The intermediate representation: a graph of typed layers over named tensors.

Conventions used everywhere in sepgen:

* Activations are NHWC with batch 1; a tensor's ``shape`` omits the batch, so a
  feature map is ``(height, width, channels)`` and a vector is ``(features,)``.
* A float graph carries float32 weights in Keras layout (conv kernels HWIO,
  depthwise kernels ``(kh, kw, in_channels, depth_multiplier)``, dense kernels
  ``(in, out)``).  A quantized graph carries, in addition, int8 weights in the
  TFLite layout (conv OHWI, depthwise ``(1, kh, kw, in_channels*depth_multiplier)``,
  dense ``(out, in)``), int32 biases and a :class:`Requant` per output channel.
* ``Requant.shift`` follows TFLite: positive = left shift, negative = right shift.

The classes are frozen dataclasses with no I/O.  ``dataclasses.replace`` is how
the quantizer derives an int8 layer from a float one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
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
    shift: np.ndarray  # int32, shape (channels,)


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


@dataclass(frozen=True, eq=False)
class Layer:
    """Base layer: one output tensor, named input tensors, fixed shapes."""

    op: ClassVar[str] = "layer"
    #: True when the output shares the input's bytes (no code is generated).
    aliases_input: ClassVar[bool] = False

    name: str
    inputs: tuple[str, ...]
    output: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def macs(self) -> int:
        """Multiply-accumulates per inference."""
        return 0

    def params(self) -> int:
        """Trainable+non-trainable parameters as Keras ``count_params()`` counts them (after folding)."""
        return 0

    def weight_bytes(self) -> int:
        """Flash bytes of constants once quantized: int8 weights, int32 bias, int32 multiplier+shift."""
        return 0

    def scratch_bytes(self) -> int:
        """Extra RAM the kernel needs besides its input and output tensors."""
        return 0


@dataclass(frozen=True, eq=False)
class _WeightedLayer(Layer):
    kernel: np.ndarray = field(default=None)  # float32, Keras layout
    bias: np.ndarray | None = None  # float32 (out,) or None
    activation: str = "none"
    #: Parameters of layers folded into this one (BatchNormalization), less the bias the fold created,
    #: so that params() still counts what Keras count_params() counted before folding.
    folded_params: int = 0
    # Filled by quantize():
    qkernel: np.ndarray | None = None  # int8, TFLite layout
    qbias: np.ndarray | None = None  # int32 (out,) (zeros when the float layer had no bias)
    requant: Requant | None = None

    @property
    def out_channels(self) -> int:
        return self.output_shape[-1]

    def params(self) -> int:
        return int(self.kernel.size) + (0 if self.bias is None else int(self.bias.size)) + self.folded_params

    def weight_bytes(self) -> int:
        """int8 kernel + int32 bias (if any) + per channel an int32 multiplier and an int8 shift."""
        bias = 0 if self.bias is None else 4 * self.out_channels
        return int(self.kernel.size) + bias + 5 * self.out_channels


@dataclass(frozen=True, eq=False)
class _Spatial(_WeightedLayer):
    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "valid"

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.kernel.shape[0]), int(self.kernel.shape[1])

    def pads(self) -> tuple[int, int]:
        """(pad_top, pad_left) in input pixels."""
        (kh, kw), (h, w) = self.kernel_size, self.input_shape[:2]
        return (conv_output_size(h, kh, self.strides[0], self.dilation[0], self.padding)[1],
                conv_output_size(w, kw, self.strides[1], self.dilation[1], self.padding)[1])


@dataclass(frozen=True, eq=False)
class Conv2D(_Spatial):
    """Standard convolution (also the 1x1 pointwise convolution). kernel HWIO."""

    op: ClassVar[str] = "conv2d"

    def macs(self) -> int:
        kh, kw, cin, cout = self.kernel.shape
        return int(self.output_shape[0] * self.output_shape[1] * kh * kw * cin * cout)

    @property
    def is_pointwise(self) -> bool:
        return self.kernel_size == (1, 1) and self.strides == (1, 1)


@dataclass(frozen=True, eq=False)
class DepthwiseConv2D(_Spatial):
    """Depthwise convolution; kernel (kh, kw, in_channels, depth_multiplier).

    Output channel ``in_channel * depth_multiplier + m`` (TFLite order).
    """

    op: ClassVar[str] = "depthwise_conv2d"

    @property
    def depth_multiplier(self) -> int:
        return int(self.kernel.shape[3])

    def macs(self) -> int:
        kh, kw, cin, dm = self.kernel.shape
        return int(self.output_shape[0] * self.output_shape[1] * kh * kw * cin * dm)


@dataclass(frozen=True, eq=False)
class FullyConnected(_WeightedLayer):
    """Dense layer; kernel (in, out)."""

    op: ClassVar[str] = "fully_connected"

    def macs(self) -> int:
        return int(self.kernel.size)


@dataclass(frozen=True, eq=False)
class _Pool(Layer):
    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (2, 2)
    padding: str = "valid"
    activation: str = "none"

    def pads(self) -> tuple[int, int]:
        (kh, kw), (h, w) = self.pool_size, self.input_shape[:2]
        return (conv_output_size(h, kh, self.strides[0], 1, self.padding)[1],
                conv_output_size(w, kw, self.strides[1], 1, self.padding)[1])


@dataclass(frozen=True, eq=False)
class MaxPool2D(_Pool):
    """Max pooling; output quantization equals the input's (TFLite requirement)."""

    op: ClassVar[str] = "max_pool2d"


@dataclass(frozen=True, eq=False)
class AvgPool2D(_Pool):
    """Average pooling over the valid (unpadded) part of each window, rounded half away from zero."""

    op: ClassVar[str] = "avg_pool2d"


@dataclass(frozen=True, eq=False)
class Mean(Layer):
    """Mean over height and width (GlobalAveragePooling2D / TFLite MEAN), output (channels,).

    ``requant`` (one channel) rescales input to output quantization when they differ.
    """

    op: ClassVar[str] = "mean"
    requant: Requant | None = None

    @property
    def count(self) -> int:
        return int(self.input_shape[0] * self.input_shape[1])

    def folded_requant(self) -> tuple[int, int]:
        """TFLM QuantizedMeanOrSum: 1/count folded into ``requant`` with integer arithmetic only:
        s = min(floor(log2(count)), 32, 31 + shift); multiplier' = (multiplier << s) / count (truncating);
        shift' = shift - s.  Returns (multiplier', shift')."""
        multiplier, shift = int(self.requant.multiplier[0]), int(self.requant.shift[0])
        s = min(self.count.bit_length() - 1, 32, 31 + shift)
        return (multiplier << s) // self.count, shift - s  # multiplier >= 0 (scales are positive): < 2^31


@dataclass(frozen=True, eq=False)
class Add(Layer):
    """Elementwise residual addition of two same-shape tensors (TFLite ADD arithmetic)."""

    op: ClassVar[str] = "add"
    activation: str = "none"
    # Filled by quantize(): TFLite's left_shift=20 scheme.
    input1_requant: Requant | None = None
    input2_requant: Requant | None = None
    output_requant: Requant | None = None
    left_shift: int = 20


@dataclass(frozen=True, eq=False)
class Softmax(Layer):
    """Softmax over the last axis. int8 output uses scale 1/256, zero point -128 (TFLite)."""

    op: ClassVar[str] = "softmax"
    beta: float = 1.0
    # Filled by quantize(): TFLite's PreprocessSoftmaxScaling results.
    input_multiplier: int = 0
    input_left_shift: int = 0
    diff_min: int = 0


@dataclass(frozen=True, eq=False)
class Reshape(Layer):
    """Flatten/Reshape: same bytes, new shape (NHWC order is preserved)."""

    op: ClassVar[str] = "reshape"
    aliases_input: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class Pad(Layer):
    """Constant padding of an (H, W, C) tensor (TFLite PAD/PADV2); output quantization equals the input's.

    ``paddings`` = ((top, bottom), (left, right), (front, back)) for H, W, C; ``value`` is the int8 fill
    (TFLite: the zero point, i.e. real 0, unless PADV2 gives a constant).  The float op pads with 0.0.
    """

    op: ClassVar[str] = "pad"
    paddings: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))
    value: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "paddings", tuple(tuple(int(v) for v in p) for p in self.paddings))


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.op: cls
    for cls in (Conv2D, DepthwiseConv2D, FullyConnected, MaxPool2D, AvgPool2D, Mean, Add, Softmax, Reshape, Pad)
}


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
