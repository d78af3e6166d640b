"""Test support: write int8 ``.tflite`` flatbuffers directly from a JSON-able model spec.

The TF converter picks scales, zero points and weights itself; the fuzz tests need
exact control of every quantization parameter (zero points at -128/127, per-channel
float32 scales spanning 2^-30..2^10, multipliers at the 2^31 rounding edge, int32
biases at their limits).  So models are written here with the object API of the
flatbuffer schema module that the ``tflite-micro`` wheel ships (the same schema
sepgen's .tflite frontend and TFLM read).

A spec is a plain dict (so a failing case can be stored as JSON and replayed)::

    {"input": {"shape": [H, W, C] or [N], "scale": float, "zero_point": int},
     "layers": [{"op": "CONV_2D", ...}, ...]}

Tensor ids: 0 is the model input, ``i + 1`` the output of ``layers[i]``.  Every layer
reads the previous tensor; ADD also reads ``"other"`` (an earlier tensor id of the same
shape).  The model output is the last layer's output.  Layer fields by op:

* ``CONV_2D``: ``weights`` int8 OHWI (nested lists), ``weight_scales`` (1 or O float32),
  ``bias`` (O int32, or None), ``stride`` [h, w], ``dilation`` [h, w], ``padding``
  ``"SAME"``/``"VALID"``, ``activation`` ``"NONE"``/``"RELU"``/``"RELU6"``, ``output``
  {``scale``, ``zero_point``}.
* ``DEPTHWISE_CONV_2D``: as CONV_2D with weights (1, kh, kw, C*m) and ``depth_multiplier`` m.
* ``FULLY_CONNECTED``: ``weights`` (out, in), ``weight_scales`` (1 = per tensor, or out),
  ``bias``, ``activation``, ``output``; the input is flattened (TFLM does it implicitly).
* ``AVERAGE_POOL_2D`` / ``MAX_POOL_2D``: ``filter`` [h, w], ``stride``, ``padding``,
  ``activation``; output quantization = input quantization.
* ``MEAN`` (over H, W): ``keep_dims`` bool, ``output``.
* ``ADD``: ``other``, ``activation``, ``output``.
* ``SOFTMAX``: ``beta``; output quantization is TFLite's fixed (1/256, -128).
* ``PAD``: ``paddings`` [[top, bottom], [left, right], [front, back]]; output quantization = input's.
* ``RESHAPE``: ``shape`` (without batch); output quantization = input's.
* ``MUL``: ``other`` (an earlier tensor id of the same shape, or whose shape is a trailing part of it: a
  per-channel vector is broadcast), ``activation``, ``output``.
* ``HARD_SWISH``, ``LEAKY_RELU`` (``alpha``): ``output``.  ``LOGISTIC``: output quantization (1/256, -128).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Spec = dict[str, Any]

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 3}
SOFTMAX_QUANT = {"scale": 1.0 / 256.0, "zero_point": -128}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def conv_out(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite's output length of one spatial axis (0 when the window does not fit)."""
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return max((size - effective + stride) // stride, 0)


def out_shape(layer: Spec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape (without batch) of a layer on an input of ``shape``; ValueError if invalid."""
    op = layer["op"]
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if len(shape) != 3:
            raise ValueError(f"{op} needs an (H, W, C) input, got {shape}")
        if op == "CONV_2D":
            w = np.asarray(layer["weights"])
            (kh, kw), channels = w.shape[1:3], w.shape[0]
            if w.shape[3] != shape[2]:
                raise ValueError(f"CONV_2D weights {w.shape} for {shape[2]} input channels")
        elif op == "DEPTHWISE_CONV_2D":
            w = np.asarray(layer["weights"])
            (kh, kw), channels = w.shape[1:3], shape[2] * layer["depth_multiplier"]
            if w.shape[3] != channels:
                raise ValueError(f"DEPTHWISE_CONV_2D weights {w.shape} for {channels} output channels")
        else:
            (kh, kw), channels = layer["filter"], shape[2]
        dilation = layer.get("dilation", [1, 1])
        h = conv_out(shape[0], kh, layer["stride"][0], dilation[0], layer["padding"])
        w_ = conv_out(shape[1], kw, layer["stride"][1], dilation[1], layer["padding"])
        if h <= 0 or w_ <= 0:
            raise ValueError(f"{op}: window larger than the input {shape}")
        return (h, w_, channels)
    if op == "FULLY_CONNECTED":
        w = np.asarray(layer["weights"])
        if w.shape[1] != int(np.prod(shape)):
            raise ValueError(f"FULLY_CONNECTED weights {w.shape} for an input of {shape}")
        return (w.shape[0],)
    if op == "MEAN":
        return (1, 1, shape[2]) if layer["keep_dims"] else (shape[2],)
    if op in ("ADD", "SOFTMAX", "MUL", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC"):
        return shape
    if op == "PAD":
        return tuple(d + sum(p) for d, p in zip(shape, layer["paddings"]))
    if op == "RESHAPE":
        new = tuple(int(d) for d in layer["shape"])
        if int(np.prod(new)) != int(np.prod(shape)):
            raise ValueError(f"RESHAPE {shape} -> {new}")
        return new
    raise ValueError(f"unknown op {op}")


def tensor_shapes(spec: Spec) -> list[tuple[int, ...]]:
    """Shapes (without batch) of tensor ids 0..len(layers)."""
    shapes = [tuple(spec["input"]["shape"])]
    for layer in spec["layers"]:
        shapes.append(out_shape(layer, shapes[-1]))
        if layer["op"] == "ADD" and shapes[layer["other"]] != shapes[-2]:
            raise ValueError(f"ADD of {shapes[-2]} and {shapes[layer['other']]}")
        other = shapes[layer["other"]] if layer["op"] == "MUL" else None
        if other is not None and (len(other) > len(shapes[-2]) or shapes[-2][len(shapes[-2]) - len(other):] != other):
            raise ValueError(f"MUL of {shapes[-2]} and {other}")
    return shapes


def tensor_quants(spec: Spec) -> list[dict[str, Any]]:
    """{"scale", "zero_point"} of tensor ids 0..len(layers) (pass-through ops keep their input's)."""
    quants = [spec["input"]]
    for layer in spec["layers"]:
        if layer["op"] in ("SOFTMAX", "LOGISTIC"):
            quants.append(SOFTMAX_QUANT)
        elif "output" in layer:
            quants.append(layer["output"])
        else:
            quants.append(quants[-1])
    return quants


class FlatModel:
    """Tensors, buffers and operators of one subgraph, written with the schema's object API."""

    def __init__(self) -> None:
        self.s = _schema()
        self.tensors: list = []
        self.buffers: list = [self.s.BufferT()]  # buffer 0: the empty buffer of activations
        self.operators: list = []
        self.codes: dict[int, int] = {}

    def _quant(self, scales, zero_points, dim: int = 0):
        q = self.s.QuantizationParametersT()
        q.scale = [float(np.float32(s)) for s in scales]
        q.zeroPoint = [int(z) for z in zero_points]
        q.quantizedDimension = dim
        return q

    def activation(self, name: str, shape: tuple[int, ...], scale: float, zero_point: int) -> int:
        """An int8 per-tensor activation tensor of shape (1,) + shape; returns its index."""
        t = self.s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, *shape], self.s.TensorType.INT8, 0
        t.quantization = self._quant([scale], [zero_point])
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, name: str, array: np.ndarray, scales=None, dim: int = 0, zero_points=None) -> int:
        """A constant tensor (int8 / int32) with its data in a new buffer (zero points 0 unless given); returns its
        index."""
        types = {np.dtype(np.int8): self.s.TensorType.INT8, np.dtype(np.int32): self.s.TensorType.INT32}
        array = np.ascontiguousarray(array)
        buf = self.s.BufferT()
        buf.data = list(array.astype(array.dtype.newbyteorder("<")).tobytes())
        self.buffers.append(buf)
        t = self.s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(array.shape), types[array.dtype], len(self.buffers) - 1
        if scales is not None:
            t.quantization = self._quant(scales, [0] * len(scales) if zero_points is None else zero_points, dim)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def operator(self, op: str, inputs: list[int], outputs: list[int], options_type: str | None = None,
                 options=None) -> None:
        code = getattr(self.s.BuiltinOperator, op)
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = self.s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], list(inputs), list(outputs)
        if options_type is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options_type)
            o.builtinOptions = options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        import flatbuffers

        codes = []
        for code, _ in sorted(self.codes.items(), key=lambda item: item[1]):
            c = self.s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        g = self.s.SubGraphT()
        g.tensors, g.inputs, g.outputs, g.operators, g.name = self.tensors, inputs, outputs, self.operators, "main"
        m = self.s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [g], self.buffers
        m.description = "sepgen test model"
        builder = flatbuffers.Builder(4096)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _bias_scales(in_scale: float, weight_scales: list[float], per_tensor_fc: bool) -> list[float]:
    """Bias scales as the converter writes them: input_scale * weight_scale in float32."""
    return [float(np.float32(in_scale) * np.float32(s)) for s in weight_scales] if per_tensor_fc else \
        [float(np.float32(np.float64(np.float32(in_scale)) * np.float64(np.float32(s)))) for s in weight_scales]


def _padding(schema, name: str) -> int:
    return {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}[name]


def build(spec: Spec) -> bytes:
    """The .tflite flatbuffer of a spec (see the module docstring)."""
    shapes, quants = tensor_shapes(spec), tensor_quants(spec)
    fm = FlatModel()
    s = fm.s
    ids = [fm.activation("input", shapes[0], quants[0]["scale"], quants[0]["zero_point"])]
    for i, layer in enumerate(spec["layers"]):
        op, name = layer["op"], f"l{i}_{layer['op'].lower()}"
        x = ids[-1]
        out = fm.activation(name, shapes[i + 1], quants[i + 1]["scale"], quants[i + 1]["zero_point"])
        act = ACTIVATIONS[layer.get("activation", "NONE")]
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = np.asarray(layer["weights"], np.int8)
            scales = [float(np.float32(v)) for v in layer["weight_scales"]]
            qdim = 3 if op == "DEPTHWISE_CONV_2D" else 0
            inputs = [x, fm.constant(f"{name}/weights", w, scales, qdim if len(scales) > 1 else 0)]
            if layer.get("bias") is not None:
                bias_scales = _bias_scales(quants[i]["scale"], scales, op == "FULLY_CONNECTED" and len(scales) == 1)
                inputs.append(fm.constant(f"{name}/bias", np.asarray(layer["bias"], np.int32), bias_scales))
            else:
                inputs.append(-1)
            if op == "CONV_2D":
                opts = s.Conv2DOptionsT(padding=_padding(s, layer["padding"]), strideW=layer["stride"][1],
                                        strideH=layer["stride"][0], fusedActivationFunction=act,
                                        dilationWFactor=layer["dilation"][1], dilationHFactor=layer["dilation"][0])
                fm.operator(op, inputs, [out], "Conv2DOptions", opts)
            elif op == "DEPTHWISE_CONV_2D":
                opts = s.DepthwiseConv2DOptionsT(
                    padding=_padding(s, layer["padding"]), strideW=layer["stride"][1], strideH=layer["stride"][0],
                    depthMultiplier=layer["depth_multiplier"], fusedActivationFunction=act,
                    dilationWFactor=layer["dilation"][1], dilationHFactor=layer["dilation"][0])
                fm.operator(op, inputs, [out], "DepthwiseConv2DOptions", opts)
            else:
                fm.operator(op, inputs, [out], "FullyConnectedOptions",
                            s.FullyConnectedOptionsT(fusedActivationFunction=act))
        elif op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            opts = s.Pool2DOptionsT(padding=_padding(s, layer["padding"]), strideW=layer["stride"][1],
                                    strideH=layer["stride"][0], filterWidth=layer["filter"][1],
                                    filterHeight=layer["filter"][0], fusedActivationFunction=act)
            fm.operator(op, [x], [out], "Pool2DOptions", opts)
        elif op == "MEAN":
            axes = fm.constant(f"{name}/axes", np.array([1, 2], np.int32))
            fm.operator(op, [x, axes], [out], "ReducerOptions", s.ReducerOptionsT(keepDims=bool(layer["keep_dims"])))
        elif op == "ADD":
            fm.operator(op, [x, ids[layer["other"]]], [out], "AddOptions", s.AddOptionsT(fusedActivationFunction=act))
        elif op == "MUL":
            fm.operator(op, [x, ids[layer["other"]]], [out], "MulOptions", s.MulOptionsT(fusedActivationFunction=act))
        elif op in ("HARD_SWISH", "LOGISTIC"):
            fm.operator(op, [x], [out])
        elif op == "LEAKY_RELU":
            fm.operator(op, [x], [out], "LeakyReluOptions", s.LeakyReluOptionsT(alpha=float(np.float32(layer["alpha"]))))
        elif op == "SOFTMAX":
            fm.operator(op, [x], [out], "SoftmaxOptions", s.SoftmaxOptionsT(beta=float(np.float32(layer["beta"]))))
        elif op == "PAD":
            paddings = np.array([[0, 0]] + [list(p) for p in layer["paddings"]], np.int32)
            fm.operator(op, [x, fm.constant(f"{name}/paddings", paddings)], [out], "PadOptions", s.PadOptionsT())
        elif op == "RESHAPE":
            new_shape = np.array([1, *layer["shape"]], np.int32)
            fm.operator(op, [x, fm.constant(f"{name}/shape", new_shape)], [out], "ReshapeOptions",
                        s.ReshapeOptionsT(newShape=[int(v) for v in new_shape]))
        else:
            raise ValueError(f"unknown op {op}")
        ids.append(out)
    return fm.finish([ids[0]], [ids[-1]])


def effective_scales(spec: Spec) -> list[np.ndarray | None]:
    """Per layer: the real per-channel rescale TFLM derives (weighted layers), else None.

    Conv/depthwise/per-channel FC: double(in) * double(w[c]) / double(out); per-tensor FC: the float32
    product in * w, then divided in double (TFLM's GetQuantizedConvolutionMultipler).
    """
    quants, result = tensor_quants(spec), []
    for i, layer in enumerate(spec["layers"]):
        if layer["op"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            result.append(None)
            continue
        in_s, out_s = np.float32(quants[i]["scale"]), np.float32(quants[i + 1]["scale"])
        w = np.asarray(layer["weight_scales"], np.float32)
        if layer["op"] == "FULLY_CONNECTED" and len(w) == 1:
            result.append(np.array([np.float64(in_s * w[0]) / np.float64(out_s)]))
        else:
            result.append(np.float64(in_s) * w.astype(np.float64) / np.float64(out_s))
    return result


def frexp_shift(real: float) -> int:
    """The TFLite QuantizeMultiplier shift of a positive real (before the flush of shifts < -31)."""
    mantissa, shift = math.frexp(real)
    if round(mantissa * (1 << 31)) == 1 << 31:
        shift += 1
    return shift
