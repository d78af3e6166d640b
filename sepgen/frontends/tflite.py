"""TFLite frontend: an int8 ``.tflite`` flatbuffer -> an int8 :class:`Graph` (quantizer "tflite").

The file is read by :mod:`sepgen.frontends.tflite_file` (TFLM's own schema module); this module
translates its operators onto sepgen's ops.

Quantization parameters are taken verbatim from the file (float32 scales, zero
points, per-channel weight scales, int8 weights, int32 biases).  The only derived
integers are the (multiplier, shift) pairs, computed with
:func:`sepgen.quantize.quantize_multiplier` from the file's float32 scales exactly as
TFLM's Prepare does (:func:`sepgen.quantize.effective_scales`); the Add/Softmax/Mean parameters
use the same formulas as sepgen's quantizer, which are TFLM's.

Every tensor keeps its .tflite tensor index in ``TensorSpec.source_index`` so the
simulator can be compared with TFLM tensor by tensor (:mod:`sepgen.tflm`).

Float I/O models (QUANTIZE after a float input, DEQUANTIZE before a float output,
as the converter emits without ``inference_input_type=int8``): those edge ops are
stripped; the Graph's input and output are the int8 tensors next to them, so the
generated C always takes and returns int8 (quantize/dequantize on the caller's side
with the scale and zero point the report shows).

This module: the reader's state and the graph walk (grouping the converter's multi-op lowerings first);
tflite_conv.py translates the weighted operators and the dilated-convolution lowering, tflite_ops.py the other
operators; tflite_file.py reads the file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..bounds import check_integer_parameters
from ..errors import UserError
from ..ir import Graph, Layer, QuantParams, TensorSpec, UnsupportedLayer, unique_name
from ..ops import Add, AvgPool2D, Maximum, MaxPool2D, Minimum, Mul
from . import ModelFileError, register
from .tflite_conv import ConvOps
from .tflite_file import TfliteTensors, parse_model, tflm_can_run  # noqa: F401  (tflm_can_run: used by the CLI)
from .tflite_ops import OtherOps

#: The .tflite operators the reader translates (besides QUANTIZE/DEQUANTIZE at the model edges).
HANDLED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
                         "RESHAPE", "SOFTMAX", "ADD", "PAD", "PADV2", "RELU", "RELU6", "LEAKY_RELU", "LOGISTIC",
                         "HARD_SWISH", "MUL", "CONCATENATION", "EXPAND_DIMS", "SQUEEZE", "MAXIMUM", "MINIMUM",
                         "RESIZE_NEAREST_NEIGHBOR"})
#: The converter's lowering of a dilated convolution (dynamic batch), read back as one dilated layer.
DILATED = "SPACE_TO_BATCH_ND+CONV+BATCH_TO_SPACE_ND"
#: The converter's nearest-neighbour UpSampling2D (Keras 3), read back as one resize_nearest layer.
UPSAMPLING = "RESHAPE+TILE+RESHAPE"
#: The multi-op patterns the reader groups into one layer, each named by its operators joined with "+"
#: (the RESHAPE/TILE chain may repeat TILE -> RESHAPE); EXPRESSES lists them beside the single operators.
HANDLED_PATTERNS = frozenset({"SPACE_TO_BATCH_ND+CONV_2D+BATCH_TO_SPACE_ND",
                              "SPACE_TO_BATCH_ND+DEPTHWISE_CONV_2D+BATCH_TO_SPACE_ND", UPSAMPLING})
SUPPORTED = (", ".join(sorted(HANDLED_OPS)) + ", QUANTIZE/DEQUANTIZE at the model edges, SPACE_TO_BATCH_ND -> "
             "CONV_2D/DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND (a dilated convolution), RESHAPE -> TILE -> RESHAPE "
             "(a nearest-neighbour upsampling)")


#: sepgen op -> the .tflite operators (and multi-op patterns, "A+B+C") that produce it (checked against
#: HANDLED_OPS and HANDLED_PATTERNS by the registry test).  Every op in sepgen.ops.BUILTIN_OPS is here or in
#: NOT_EXPRESSIBLE.
EXPRESSES: dict[str, tuple[str, ...]] = {
    "conv2d": ("CONV_2D", "SPACE_TO_BATCH_ND+CONV_2D+BATCH_TO_SPACE_ND"),
    "depthwise_conv2d": ("DEPTHWISE_CONV_2D", "SPACE_TO_BATCH_ND+DEPTHWISE_CONV_2D+BATCH_TO_SPACE_ND"),
    "fully_connected": ("FULLY_CONNECTED",),
    "max_pool2d": ("MAX_POOL_2D",), "avg_pool2d": ("AVERAGE_POOL_2D",), "mean": ("MEAN",), "add": ("ADD",),
    "softmax": ("SOFTMAX",), "reshape": ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"), "pad": ("PAD", "PADV2"),
    "relu": ("RELU", "RELU6"),
    "leaky_relu": ("LEAKY_RELU",), "logistic": ("LOGISTIC",), "hard_swish": ("HARD_SWISH",), "mul": ("MUL",),
    "concatenation": ("CONCATENATION",), "maximum": ("MAXIMUM",), "minimum": ("MINIMUM",),
    "resize_nearest": ("RESIZE_NEAREST_NEIGHBOR", UPSAMPLING),
}
#: sepgen op -> why a .tflite file cannot produce it.
NOT_EXPRESSIBLE: dict[str, str] = {
    "rescaling": "the file fixes its own input quantization; the converter writes Keras Rescaling as MUL/ADD, "
                 "read as such",
}


class _Reader(ConvOps, OtherOps, TfliteTensors):
    """Walks one subgraph of a parsed model and emits sepgen layers."""

    def __init__(self, schema, model, path: Path) -> None:
        super().__init__(schema, model, path)
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorSpec] = {}
        self.names: dict[int, str] = {}  # tflite tensor index -> sepgen tensor name
        self.layer_names: set[str] = set()

    def spec_for(self, index: int, layer: str) -> str:
        """Register tflite tensor ``index`` as a sepgen tensor (batch dropped); returns its name."""
        index = int(index)
        if index in self.names:
            return self.names[index]
        shape = self.shape(index)
        if len(shape) < 2 or shape[0] != 1:
            raise UnsupportedLayer(layer, f"tensor shape {shape}", "batch 1 and (N, features) or (N, H, W, C)")
        name = unique_name(re.sub(r"\W", "_", self.tname(index).split(";")[0]) or f"t{index}", self.tensors)
        self.tensors[name] = TensorSpec(name, self.sepgen_shape(index), self.act_quant(index, layer),
                                        source_index=int(index))
        self.names[index] = name
        return name

    def input_name(self, index: int, layer: str) -> str:
        index = int(index)
        if index not in self.names:
            raise UnsupportedLayer(layer, "graph", f"tensor {index} ('{self.tname(index)}') is read before it "
                                   "is computed (constant activations are not supported)")
        return self.names[index]

    # ------------------------------------------------------------------ layers
    def emit(self, cls: type[Layer], name: str, inputs: list[str], out_index: int, **fields) -> str:
        out = self.spec_for(out_index, name)
        self.layers.append(cls(name=name, inputs=tuple(inputs), output=out,
                               input_shape=self.tensors[inputs[0]].shape,
                               output_shape=self.tensors[out].shape, **fields))
        return out

    def emit_intermediate(self, cls, name: str, inputs: list[str], shape: tuple[int, ...], quant: QuantParams,
                          **fields) -> str:
        """A layer whose output has no .tflite tensor (e.g. MEAN before its keep_dims reshape)."""
        out = unique_name(f"{name}_out", self.tensors)
        self.tensors[out] = TensorSpec(out, shape, quant)
        self.layers.append(cls(name=name, inputs=tuple(inputs), output=out,
                               input_shape=self.tensors[inputs[0]].shape, output_shape=shape, **fields))
        return out

    def layer_name(self, op_index: int, op) -> str:
        out = op.outputs[0] if op.outputs is not None and len(op.outputs) else -1
        base = self.tname(out).split(";")[0] if out >= 0 else ""
        base = base or f"op{op_index}"
        name = unique_name(base, self.layer_names)
        self.layer_names.add(name)
        return name

    def need_hwc(self, x: str, name: str) -> tuple[int, int, int]:
        shape = self.tensors[x].shape
        if len(shape) != 3:
            raise UnsupportedLayer(name, "input shape", f"{shape}; needs (H, W, C)")
        return shape  # type: ignore[return-value]

    # ------------------------------------------------------------------- walk
    def build(self, name: str, source: str, digest: str) -> Graph:
        if self.g.inputs is None or len(self.g.inputs) != 1 or self.g.outputs is None or len(self.g.outputs) != 1:
            raise UnsupportedLayer(name, "model", "exactly one input and one output are supported")
        graph_in, graph_out = int(self.g.inputs[0]), int(self.g.outputs[0])
        ops = list(self.g.operators or [])
        codes = [self.op_names.get(self._builtin(op), f"code {self._builtin(op)}") for op in ops]
        self._check_int8(ops, codes, name)
        # Edge QUANTIZE (float input) / DEQUANTIZE (float output) are stripped.
        if self.dtype(graph_in) == "FLOAT32":
            first = next((i for i, op in enumerate(ops) if graph_in in list(op.inputs)), None)
            if first is None or codes[first] != "QUANTIZE":
                raise UnsupportedLayer(name, "float input", "the float input must feed a QUANTIZE op")
            graph_in = int(ops[first].outputs[0])
            ops, codes = ops[:first] + ops[first + 1:], codes[:first] + codes[first + 1:]
        if self.dtype(graph_out) == "FLOAT32":
            last = next((i for i, op in enumerate(ops) if graph_out in list(op.outputs)), None)
            if last is None or codes[last] != "DEQUANTIZE":
                raise UnsupportedLayer(name, "float output", "the float output must come from a DEQUANTIZE op")
            graph_out = int(ops[last].inputs[0])
            ops, codes = ops[:last] + ops[last + 1:], codes[:last] + codes[last + 1:]
        ops, codes = self._live(ops, codes, graph_out)
        self.spec_for(graph_in, "input")
        input_name = self.names[graph_in]
        handlers = {
            "CONV_2D": lambda i, op, n: self.weighted(i, op, n, "conv2d"),
            "DEPTHWISE_CONV_2D": lambda i, op, n: self.weighted(i, op, n, "depthwise_conv2d"),
            "FULLY_CONNECTED": lambda i, op, n: self.weighted(i, op, n, "fully_connected"),
            "AVERAGE_POOL_2D": lambda i, op, n: self.pool(op, n, AvgPool2D),
            "MAX_POOL_2D": lambda i, op, n: self.pool(op, n, MaxPool2D),
            "MEAN": lambda i, op, n: self.mean(op, n),
            "ADD": lambda i, op, n: self.binary(op, n, Add),
            "MUL": lambda i, op, n: self.binary(op, n, Mul),
            "CONCATENATION": lambda i, op, n: self.concatenation(op, n),
            "MAXIMUM": lambda i, op, n: self.binary(op, n, Maximum),
            "MINIMUM": lambda i, op, n: self.binary(op, n, Minimum),
            "RESIZE_NEAREST_NEIGHBOR": lambda i, op, n: self.resize_nearest(op, n),
            "SOFTMAX": lambda i, op, n: self.softmax(op, n),
            "RESHAPE": lambda i, op, n: self.reshape(op, n),
            "EXPAND_DIMS": lambda i, op, n: self.reshape(op, n, "EXPAND_DIMS"),
            "SQUEEZE": lambda i, op, n: self.reshape(op, n, "SQUEEZE"),
            "PAD": lambda i, op, n: self.pad(op, n, "PAD"),
            "PADV2": lambda i, op, n: self.pad(op, n, "PADV2"),
            "RELU": lambda i, op, n: self.relu(op, n, "relu"),
            "RELU6": lambda i, op, n: self.relu(op, n, "relu6"),
            "LEAKY_RELU": lambda i, op, n: self.leaky_relu(op, n),
            "LOGISTIC": lambda i, op, n: self.logistic(op, n),
            "HARD_SWISH": lambda i, op, n: self.hard_swish(op, n),
        }
        assert set(handlers) == HANDLED_OPS  # the table the registry test checks
        ops, codes = self.group_dilated(ops, codes, DILATED)
        handlers[DILATED] = lambda i, group, n: self.dilated(i, group, n)
        ops, codes = self.group_upsampling(ops, codes, UPSAMPLING)
        handlers[UPSAMPLING] = lambda i, group, n: self.upsampling(group, n)
        for i, (op, code) in enumerate(zip(ops, codes)):
            lname = self.layer_name(i, op[-1] if code in (DILATED, UPSAMPLING) else op)
            if code not in handlers:
                raise UnsupportedLayer(lname, f"op {code}", f"supported: {SUPPORTED}")
            try:
                handlers[code](i, op, lname)
            except UserError as exc:
                if isinstance(exc, (UnsupportedLayer, ModelFileError)):
                    raise
                raise UnsupportedLayer(lname, f"{code} quantization", str(exc)) from None
        if graph_out not in self.names:
            raise UnsupportedLayer(name, "model", "its output is not computed by a supported op")
        graph = Graph(name=name, layers=tuple(self.layers), tensors=self.tensors, input=input_name,
                      output=self.names[graph_out], source=source, source_sha256=digest, quantizer="tflite")
        graph.validate()
        check_integer_parameters(graph)
        return graph

    @staticmethod
    def _live(ops, codes, graph_out: int):
        """Drop ops that do not feed the output's data: e.g. the SHAPE/STRIDED_SLICE/PACK chain a
        dynamic-batch Flatten leaves to compute RESHAPE's shape operand (sepgen uses the static shape)."""
        needed, keep = {graph_out}, []
        for op, code in reversed(list(zip(ops, codes))):
            if not any(int(t) in needed for t in op.outputs):
                continue
            keep.append((op, code))
            data_inputs = list(op.inputs)[:1] if code == "RESHAPE" else list(op.inputs)
            needed.update(int(t) for t in data_inputs if t >= 0)
        keep.reverse()
        return [op for op, _ in keep], [code for _, code in keep]

    def _check_int8(self, ops, codes, name: str) -> None:
        """A float model (float weights) gets one clear error instead of a per-op complaint."""
        for op, code in zip(ops, codes):
            if code in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
                wtype = self.dtype(op.inputs[1])
                if wtype in ("FLOAT32", "FLOAT16"):
                    raise ModelFileError(
                        f"{self.path}: a float .tflite model ({wtype} weights); sepgen needs a full-integer "
                        "int8 model (convert with optimizations=[tf.lite.Optimize.DEFAULT], a "
                        "representative_dataset and supported_ops=[TFLITE_BUILTINS_INT8])")


@register(".tflite")
def load_tflite(path, **options) -> Graph:
    """Load an int8 .tflite file as an int8 Graph (quantizer "tflite")."""
    if options:
        raise TypeError(f"unexpected options for .tflite: {', '.join(sorted(options))}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    schema, model = parse_model(data, path)
    name = re.sub(r"\W", "_", path.stem) or "model"
    try:
        return _Reader(schema, model, path).build(name, str(path), hashlib.sha256(data).hexdigest())
    except (IndexError, TypeError, AttributeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
        if isinstance(exc, UserError):
            raise
        raise ModelFileError(f"{path}: corrupt or unexpected .tflite contents ({type(exc).__name__}: {exc})") \
            from None
