"""TFLite frontend, part 2: the operators that are not convolutions (pooling, MEAN, ADD, activations,
SOFTMAX, RESHAPE, PAD), each translated onto its sepgen op with TFLM's parameters, and the converter's
RESHAPE/TILE lowering of UpSampling2D read back as one resize_nearest layer.

:class:`OtherOps` is a mixin of the reader in :mod:`sepgen.frontends.tflite`, which provides the tensor
access (``input_name``, ``act_quant``, ``data``, ``tensors``), ``emit``/``emit_intermediate``, ``need_hwc``
and the option decoders (``activation``, ``padding``).
"""

from __future__ import annotations

import numpy as np

from ..ir import UnsupportedLayer
from ..quantize import hard_swish_params, resize_nearest_indices
from ..ops import (
    Concatenation,
    HardSwish,
    LeakyRelu,
    Logistic,
    Mean,
    Pad,
    Relu,
    Reshape,
    ResizeNearest,
    Softmax,
    logistic_params,
    softmax_params,
)


def _without_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return tuple(shape)


class OtherOps:
    """Handlers of the .tflite operators other than CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED."""

    def same_quant(self, x: str, out_index: int, name: str, op_name: str) -> None:
        if self.tensors[x].quant != self.act_quant(out_index, name):
            raise UnsupportedLayer(name, f"{op_name} with different input and output quantization",
                                   "TFLite requires them equal")

    def pool(self, op, name: str, cls) -> None:
        opts = op.builtinOptions
        x = self.input_name(op.inputs[0], name)
        self.need_hwc(x, name)
        self.same_quant(x, op.outputs[0], name, cls.op)
        pool_size, strides = (int(opts.filterHeight), int(opts.filterWidth)), (int(opts.strideH), int(opts.strideW))
        self.emit(cls, name, [x], op.outputs[0], pool_size=pool_size, strides=strides,
                  padding=self.padding(opts, name), activation=self.activation(opts, name))

    def mean(self, op, name: str) -> None:
        x = self.input_name(op.inputs[0], name)
        c = self.need_hwc(x, name)[2]
        rank = len(self.shape(op.inputs[0]))
        axes = sorted({int(a) % rank for a in self.data(op.inputs[1], np.int32).reshape(-1)})
        if axes != ([1, 2] if rank == 4 else [1]):
            raise UnsupportedLayer(name, f"MEAN over axes {axes}", "only over height and width (axes 1, 2), or "
                                   "over time (axis 1 of a sequence)")
        in_q, out_q = self.tensors[x].quant, self.act_quant(op.outputs[0], name)
        requant = Mean.requant_for(in_q, out_q)
        out_shape = self.sepgen_shape(op.outputs[0])
        if out_shape == (c,):
            self.emit(Mean, name, [x], op.outputs[0], requant=requant)
        elif out_shape == (1, 1, c):  # keep_dims: MEAN to (C,), then a free reshape to the file's tensor
            mid = self.emit_intermediate(Mean, name, [x], (c,), out_q, requant=requant)
            self.emit(Reshape, f"{name}/keepdims", [mid], op.outputs[0])
        else:
            raise UnsupportedLayer(name, "MEAN output shape", str(out_shape))

    def binary(self, op, name: str, cls) -> None:
        """ADD / MUL / MAXIMUM / MINIMUM: two activations, or an activation and a constant int8 tensor (either order:
        these ops are symmetric in TFLM's arithmetic), broadcast as sepgen.ops._binary allows."""
        inputs, constant = [], None
        for index in (int(i) for i in op.inputs[:2]):
            if index in self.names:
                inputs.append(self.names[index])
            elif constant is None and self.is_constant(index):
                constant = index
            else:
                inputs.append(self.input_name(index, name))  # raises: read before it is computed
        if not inputs:
            raise UnsupportedLayer(name, f"{cls.op.upper()} of two constants", "one operand must be computed")
        quants = [self.tensors[t].quant for t in inputs]
        fields = {}
        if constant is not None:
            if self.dtype(constant) != "INT8":
                raise UnsupportedLayer(name, f"{self.dtype(constant)} constant operand", "an int8 tensor is needed")
            q = self.act_quant(constant, name)
            values = self.data(constant, np.int8)
            values = values.reshape(_without_leading_ones(values.shape) or (1,))
            fields = dict(constant=((values.astype(np.float64) - q.zero_point) * q.scale).astype(np.float32),
                          qconstant=values.copy(), constant_scale=q.scale, constant_zero_point=q.zero_point)
            quants.append(q)
        out_q = self.act_quant(op.outputs[0], name)
        shapes = [self.tensors[t].shape for t in inputs] + ([tuple(values.shape)] if constant is not None else [])
        try:
            expect = cls.infer_shape([self.tensors[t].shape for t in inputs], constant=fields.get("constant"))
        except ValueError as exc:
            raise UnsupportedLayer(name, f"{cls.op.upper()} broadcasting", str(exc)) from None
        if self.sepgen_shape(op.outputs[0]) != expect:
            raise UnsupportedLayer(name, f"{cls.op.upper()} output shape", f"{self.sepgen_shape(op.outputs[0])} for "
                                   f"operands {shapes}")
        if cls.op in ("maximum", "minimum") and any(q != out_q for q in quants):
            raise UnsupportedLayer(name, f"{cls.op.upper()} of operands quantized unlike its output", "TFLite Micro "
                                   "compares the raw int8 values; they must share the output's scale and zero point")
        requants = {"requant": cls.requant_for(*quants, out_q)} if cls.op == "mul" else cls.requants_for(*quants, out_q)
        activation = self.activation(op.builtinOptions, name) if cls.op in ("add", "mul") else "none"
        self.emit(cls, name, inputs, op.outputs[0], activation=activation, **fields, **requants)

    def concatenation(self, op, name: str) -> None:
        """CONCATENATION: TFLM's int8 kernel copies bytes, so every input must have the output's quantization (as
        the converter writes it); the axis counts the batch in the file."""
        inputs = [self.input_name(i, name) for i in op.inputs]
        out_q = self.act_quant(op.outputs[0], name)
        if any(self.tensors[t].quant != out_q for t in inputs):
            raise UnsupportedLayer(name, "CONCATENATION of inputs quantized unlike its output", "TFLite Micro copies "
                                   "the bytes unchanged; the inputs must share the output's scale and zero point")
        if self.activation(op.builtinOptions, name) != "none":
            raise UnsupportedLayer(name, "CONCATENATION with a fused activation", "TFLite Micro refuses it")
        axis = int(op.builtinOptions.axis) if op.builtinOptions is not None else 0
        rank = len(self.shape(op.outputs[0]))
        if axis % rank == 0:
            raise UnsupportedLayer(name, "CONCATENATION along the batch axis", "batch 1 only")
        axis = axis % rank - 1 + (1 if rank == 3 else 0)  # the batch-less axis; (1, T, C) is read as (1, 1, T, C)
        try:
            expect = Concatenation.infer_shape([self.tensors[t].shape for t in inputs], axis=axis)
        except ValueError as exc:
            raise UnsupportedLayer(name, "CONCATENATION", str(exc)) from None
        if self.sepgen_shape(op.outputs[0]) != expect:
            raise UnsupportedLayer(name, "CONCATENATION output shape", f"{self.sepgen_shape(op.outputs[0])}")
        self.emit(Concatenation, name, inputs, op.outputs[0], axis=axis,
                  **Concatenation.rescales_for([self.tensors[t].quant for t in inputs], out_q))

    def resize_nearest(self, op, name: str) -> None:
        """RESIZE_NEAREST_NEIGHBOR (TFLM copies bytes: the output must keep the input's quantization)."""
        x = self.input_name(op.inputs[0], name)
        h, w, _ = self.need_hwc(x, name)
        self.same_quant(x, op.outputs[0], name, "RESIZE_NEAREST_NEIGHBOR")
        out_h, out_w = (int(v) for v in self.data(op.inputs[1], np.int32).reshape(-1))
        opts = op.builtinOptions
        align, half = (bool(opts.alignCorners), bool(opts.halfPixelCenters)) if opts is not None else (False, False)
        self.emit(ResizeNearest, name, [x], op.outputs[0], rows=resize_nearest_indices(h, out_h, align, half),
                  cols=resize_nearest_indices(w, out_w, align, half))

    def group_upsampling(self, ops, codes, upsampling_code: str):
        """Replace each chain RESHAPE (rank 4 -> rank 5) -> TILE -> RESHAPE ... -> RESHAPE (back to rank 4), each op
        reading the previous one's output, by one (``upsampling_code``, the ops) entry; :meth:`upsampling` checks it."""
        out_ops, out_codes, i = [], [], 0
        while i < len(ops):
            j = i + 1
            if (codes[i] == "RESHAPE" and len(self.shape(ops[i].inputs[0])) == 4
                    and len(self.shape(ops[i].outputs[0])) == 5):
                while (j < len(ops) and codes[j] in ("TILE", "RESHAPE") and len(self.shape(ops[j - 1].outputs[0])) == 5
                       and int(ops[j].inputs[0]) == int(ops[j - 1].outputs[0])):
                    j += 1
                if "TILE" in codes[i:j] and codes[j - 1] == "RESHAPE" and len(self.shape(ops[j - 1].outputs[0])) == 4:
                    out_ops.append(tuple(ops[i:j]))
                    out_codes.append(upsampling_code)
                    i = j
                    continue
                j = i + 1
            out_ops.extend(ops[i:j])
            out_codes.extend(codes[i:j])
            i = j
        return out_ops, out_codes

    def upsampling(self, group, name: str) -> None:
        """The converter's nearest-neighbour UpSampling2D (Keras 3): RESHAPE to rank 5 -> (TILE -> RESHAPE)+ back to
        (1, H*sy, W*sx, C), read as one resize_nearest layer.  The chain is run on an index map of the input, so
        only a chain that equals an integer upsampling by (sy, sx) is accepted; TILE and RESHAPE copy bytes, so
        every tensor of the chain must keep the input's quantization."""
        x = self.input_name(group[0].inputs[0], name)
        h, w, c = self.need_hwc(x, name)
        out_index = int(group[-1].outputs[0])
        shapes = [self.shape(int(op.outputs[0])) for op in group]
        out = self.sepgen_shape(out_index)
        what = "RESHAPE/TILE chain"
        if len(shapes[-1]) != 4 or len(out) != 3 or out[2] != c or out[0] % h or out[1] % w:
            raise UnsupportedLayer(name, what, f"{(h, w, c)} -> {shapes[-1]}; only nearest-neighbour upsampling "
                                   "by integer factors (Keras UpSampling2D)")
        rows, cols = resize_nearest_indices(h, out[0], False, False), resize_nearest_indices(w, out[1], False, False)
        index = np.arange(h * w * c).reshape(1, h, w, c)
        for op, shape in zip(group, shapes):
            self.same_quant(x, op.outputs[0], name, what)
            if self.op_names.get(self._builtin(op)) == "TILE":
                multiples = self.data(op.inputs[1], np.int64 if self.dtype(op.inputs[1]) == "INT64" else np.int32)
                multiples = tuple(int(m) for m in multiples.reshape(-1))
                if (len(multiples) != index.ndim or min(multiples) < 1
                        or tuple(n * m for n, m in zip(index.shape, multiples)) != shape):  # before allocating
                    raise UnsupportedLayer(name, f"TILE multiples {multiples}", f"of {tuple(index.shape)} where the "
                                           f"file has {shape}")
                index = np.tile(index, multiples)
            elif int(np.prod(shape)) == index.size:  # RESHAPE to its output's static shape (sepgen's convention)
                index = index.reshape(shape)
            if tuple(index.shape) != shape:
                raise UnsupportedLayer(name, what, f"computes {tuple(index.shape)} where the file has {shape}")
        want = np.arange(h * w * c).reshape(h, w, c)[list(rows)][:, list(cols)]
        if not np.array_equal(index[0], want):
            raise UnsupportedLayer(name, what, f"{(h, w, c)} -> {out} is not a nearest-neighbour upsampling by "
                                   f"({out[0] // h}, {out[1] // w})")
        self.emit(ResizeNearest, name, [x], out_index, rows=rows, cols=cols)

    def relu(self, op, name: str, activation: str) -> None:
        """RELU (TFLM ReluQuantized: requantize, then clamp) and RELU6 (TFLM clamps the raw input between its
        zero point and 6 in the input's quantization, so the output's must equal the input's)."""
        x = self.input_name(op.inputs[0], name)
        in_q, out_q = self.tensors[x].quant, self.act_quant(op.outputs[0], name)
        if activation == "relu6":
            self.same_quant(x, op.outputs[0], name, "RELU6")
        self.emit(Relu, name, [x], op.outputs[0], activation=activation, requant=Relu.requant_for(in_q, out_q))

    def leaky_relu(self, op, name: str) -> None:
        """LEAKY_RELU (TFLM QuantizeLeakyRelu: one rescale for x >= input_zp, one with alpha below)."""
        x = self.input_name(op.inputs[0], name)
        alpha = float(np.float32(op.builtinOptions.alpha if op.builtinOptions is not None else 0.0))
        if not (np.isfinite(alpha) and alpha >= 0):
            raise UnsupportedLayer(name, f"LEAKY_RELU alpha {alpha}", "the slope must be a finite number >= 0")
        in_q, out_q = self.tensors[x].quant, self.act_quant(op.outputs[0], name)
        self.emit(LeakyRelu, name, [x], op.outputs[0], alpha=alpha, **LeakyRelu.requants_for(in_q, out_q, alpha))

    def logistic(self, op, name: str) -> None:
        """LOGISTIC (TFLM int8 Logistic: its Prepare requires the output zero point -128; the scale is not read)."""
        x = self.input_name(op.inputs[0], name)
        out_q = self.act_quant(op.outputs[0], name)
        if out_q.zero_point != -128:
            raise UnsupportedLayer(name, f"LOGISTIC output zero point {out_q.zero_point}", "TFLite requires -128")
        m, shift, radius = logistic_params(self.tensors[x].quant.scale)
        self.emit(Logistic, name, [x], op.outputs[0], input_multiplier=m, input_left_shift=shift,
                  input_range_radius=radius)

    def hard_swish(self, op, name: str) -> None:
        """HARD_SWISH (TFLM int8 HardSwish; Prepare's Q15 multipliers from float32 scale ratios)."""
        x = self.input_name(op.inputs[0], name)
        in_q, out_q = self.tensors[x].quant, self.act_quant(op.outputs[0], name)
        self.emit(HardSwish, name, [x], op.outputs[0], **hard_swish_params(in_q.scale, out_q.scale))

    def softmax(self, op, name: str) -> None:
        x = self.input_name(op.inputs[0], name)
        if len(self.tensors[x].shape) != 1:
            raise UnsupportedLayer(name, "SOFTMAX", f"on shape {self.tensors[x].shape}; only over a vector")
        beta = float(np.float32(op.builtinOptions.beta if op.builtinOptions is not None else 1.0))
        m, shift, diff_min = softmax_params(beta, self.tensors[x].quant.scale)
        self.emit(Softmax, name, [x], op.outputs[0], beta=beta, input_multiplier=m, input_left_shift=shift,
                  diff_min=diff_min)

    def reshape(self, op, name: str, op_name: str = "RESHAPE") -> None:
        """RESHAPE, EXPAND_DIMS, SQUEEZE: the same bytes under another shape (no code)."""
        x = self.input_name(op.inputs[0], name)
        self.same_quant(x, op.outputs[0], name, op_name)
        out_shape = self.sepgen_shape(op.outputs[0])
        if len(out_shape) not in (1, 3) or int(np.prod(out_shape)) != self.tensors[x].size:
            raise UnsupportedLayer(name, op_name, f"{self.tensors[x].shape} -> {out_shape}")
        self.emit(Reshape, name, [x], op.outputs[0])

    def pad(self, op, name: str, op_name: str) -> None:
        x = self.input_name(op.inputs[0], name)
        self.need_hwc(x, name)
        self.same_quant(x, op.outputs[0], name, op_name)
        paddings = self.data(op.inputs[1], np.int64 if self.dtype(op.inputs[1]) == "INT64" else np.int32)
        paddings = paddings.reshape(-1, 2).astype(int)
        if paddings.shape != (4, 2) or np.any(paddings[0] != 0) or np.any(paddings < 0):
            raise UnsupportedLayer(name, f"{op_name} paddings {paddings.tolist()}",
                                   "4-D, non-negative, none on the batch axis")
        value = self.tensors[x].quant.zero_point  # TFLM pad.cc: the output zero point unless given
        if op_name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = int(self.data(op.inputs[2], np.int8).reshape(-1)[0])
        self.emit(Pad, name, [x], op.outputs[0], paddings=tuple(tuple(int(v) for v in p) for p in paddings[1:]),
                  value=int(value))
