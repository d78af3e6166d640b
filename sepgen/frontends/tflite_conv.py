"""TFLite frontend, part 3: the weighted operators (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) with their int8
weights, int32 biases and TFLM's per-channel (multiplier, shift) pairs, and the converter's dilated-convolution
lowering (SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND) read back as one dilated layer.

:class:`ConvOps` is a mixin of the reader in :mod:`sepgen.frontends.tflite`, which provides the tensor access
(``input_name``, ``act_quant``, ``quant``, ``data``, ``dtype``, ``shape``, ``sepgen_shape``, ``tensors``,
``op_names``), ``emit``/``emit_intermediate``, ``need_hwc`` and the option decoders (``activation``, ``padding``)."""

from __future__ import annotations

import numpy as np

from ..ir import UnsupportedLayer, conv_output_size
from ..ops import Conv2D, DepthwiseConv2D, FullyConnected, Reshape
from ..quantize import effective_scales, requant_for


class ConvOps:
    """The weighted operators of the .tflite reader (a mixin; see the module docstring)."""

    def _weights(self, op, name: str, kind: str):
        """(int8 weights, float32 weight scales per output channel or 1, int32 bias or None, bias scale check)."""
        w_index = op.inputs[1]
        if self.dtype(w_index) != "INT8":
            raise UnsupportedLayer(name, f"{self.dtype(w_index)} weights", "an int8 weight tensor is needed")
        w = self.data(w_index, np.int8)
        scales, zps, qdim = self.quant(w_index)
        if len(scales) == 0:
            raise UnsupportedLayer(name, "unquantized weights", "int8 weights with scales are needed")
        if np.any(zps != 0):
            raise UnsupportedLayer(name, "weights with a non-zero zero point", "TFLite int8 weights are symmetric")
        if not np.all(np.isfinite(scales) & (scales >= 0)):
            raise UnsupportedLayer(name, "weight scales", "every weight scale must be a finite number >= 0")
        cout = w.shape[3] if kind == "depthwise_conv2d" else w.shape[0]
        expect_dim = 3 if kind == "depthwise_conv2d" else 0
        if len(scales) not in (1, cout) or (len(scales) > 1 and qdim != expect_dim):
            raise UnsupportedLayer(name, "weight quantization", f"{len(scales)} scales on dimension {qdim}")
        bias = None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b_index = op.inputs[2]
            if self.dtype(b_index) != "INT32":
                raise UnsupportedLayer(name, f"{self.dtype(b_index)} bias", "an int32 bias is needed")
            bias = self.data(b_index, np.int32).reshape(-1)
        return w, scales, bias, cout

    def weighted(self, op_index, op, name, kind, lowered: tuple | None = None) -> None:
        """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.  ``lowered`` = (sepgen input tensor, output index,
        dilation, padding) when the op is the middle of the converter's dilated-convolution lowering."""
        opts = op.builtinOptions
        in_index, out_index = (op.inputs[0], op.outputs[0]) if lowered is None else lowered[:2]
        x = self.input_name(in_index, name) if lowered is None else in_index  # lowered: a sepgen tensor name
        in_q = self.tensors[x].quant
        w, w_scales, qbias, cout = self._weights(op, name, kind)
        out_q = self.act_quant(out_index, name)
        act = self.activation(opts, name)
        per_tensor_fc = kind == "fully_connected" and len(w_scales) == 1
        effective = effective_scales(in_q.scale, w_scales, out_q.scale, cout, per_tensor_fc)
        requant = requant_for(effective)
        ch_scales = np.broadcast_to(w_scales.astype(np.float64), (cout,))
        wf = w.astype(np.float64)
        if kind == "conv2d":  # OHWI -> HWIO
            kernel = (wf * ch_scales[:, None, None, None]).transpose(1, 2, 3, 0)
        elif kind == "depthwise_conv2d":  # (1, kh, kw, C*dm) -> (kh, kw, C, dm)
            cin = self.tensors[x].shape[-1]
            dm = int(opts.depthMultiplier) or cout // cin
            if cout != cin * dm:
                raise UnsupportedLayer(name, "depthwise channels", f"{cout} outputs for {cin} inputs x {dm}")
            kernel = (wf * ch_scales)[0].reshape(w.shape[1], w.shape[2], cin, cout // cin)
        else:  # (out, in) -> (in, out)
            kernel = (wf * ch_scales[:, None]).T
        bias = None if qbias is None else (qbias * np.float64(in_q.scale) * ch_scales).astype(np.float32)
        fields = {"kernel": np.ascontiguousarray(kernel, np.float32), "bias": bias, "activation": act,
                  "qkernel": np.ascontiguousarray(w), "requant": requant,
                  "qbias": np.zeros(cout, np.int32) if qbias is None else qbias.astype(np.int32)}
        if kind == "fully_connected":
            if opts is not None and getattr(opts, "weightsFormat", 0) != 0:
                raise UnsupportedLayer(name, "shuffled FULLY_CONNECTED weights", "DEFAULT weights format only")
            if len(self.tensors[x].shape) != 1:  # TFLM flattens the input implicitly
                flat = (int(np.prod(self.tensors[x].shape)),)
                if flat[0] != w.shape[1]:
                    raise UnsupportedLayer(name, "FULLY_CONNECTED input", f"{self.tensors[x].shape} for {w.shape}")
                x = self.emit_intermediate(Reshape, f"{name}/flatten", [x], flat, in_q)
            if len(self.shape(op.outputs[0])) != 2:
                raise UnsupportedLayer(name, "FULLY_CONNECTED output", f"shape {self.shape(op.outputs[0])}")
            self.emit(FullyConnected, name, [x], op.outputs[0], **fields)
            return
        in_h, in_w, _ = self.need_hwc(x, name)
        cls = Conv2D if kind == "conv2d" else DepthwiseConv2D
        strides, dilation = (int(opts.strideH), int(opts.strideW)), (int(opts.dilationHFactor or 1),
                                                                      int(opts.dilationWFactor or 1))
        padding = self.padding(opts, name)
        if lowered is not None:
            if strides != (1, 1) or dilation != (1, 1) or padding != "valid":
                raise UnsupportedLayer(name, "dilated convolution lowering", f"inner {kind} with strides {strides}, "
                                       f"dilation {dilation}, padding {padding}; expected 1, 1, VALID")
            dilation, padding = lowered[2], lowered[3]
        kh, kw = kernel.shape[:2]
        expect = (conv_output_size(in_h, kh, strides[0], dilation[0], padding)[0],
                  conv_output_size(in_w, kw, strides[1], dilation[1], padding)[0], cout)
        if self.sepgen_shape(out_index) != expect:
            raise UnsupportedLayer(name, "output shape", f"{self.sepgen_shape(out_index)}, expected {expect}")
        self.emit(cls, name, [x], out_index, strides=strides, dilation=dilation, padding=padding, **fields)

    def dilated(self, op_index, group, name) -> None:
        """The converter's lowering of a dilated conv (dynamic batch): SPACE_TO_BATCH_ND -> CONV_2D or
        DEPTHWISE_CONV_2D (VALID, dilation 1) -> BATCH_TO_SPACE_ND, read back as one dilated layer.

        Space-to-batch pads with real 0 (the zero point) and the crops drop the padding added for
        divisibility, so the three ops equal a dilated convolution over the input padded by
        (pad - crop) on each side: 'valid' when that is 0, 'same' when it is TensorFlow's SAME padding.
        """
        s2b, conv, b2s = group
        block = tuple(int(v) for v in self.data(s2b.inputs[1], np.int32).reshape(-1))
        pads = self.data(s2b.inputs[2], np.int32).reshape(-1, 2).astype(int)
        crops = self.data(b2s.inputs[2], np.int32).reshape(-1, 2).astype(int)
        if (len(block) != 2 or min(block) < 1 or tuple(int(v) for v in self.data(b2s.inputs[1], np.int32).reshape(-1))
                != block or pads.shape != (2, 2) or crops.shape != (2, 2) or np.any(pads < 0) or np.any(crops < 0)):
            raise UnsupportedLayer(name, "SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND", f"block {block}, paddings "
                                   f"{pads.tolist()}, crops {crops.tolist()}; only a dilated convolution's lowering")
        x = self.input_name(s2b.inputs[0], name)
        for a, b in ((s2b.inputs[0], s2b.outputs[0]), (b2s.inputs[0], b2s.outputs[0])):
            if self.act_quant(a, name) != self.act_quant(b, name):
                raise UnsupportedLayer(name, "SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND requantization",
                                       "TFLite requires equal input and output quantization")
        effective_pads = (pads - crops).tolist()  # [[top, bottom], [left, right]] around the original input
        w_shape = self.shape(conv.inputs[1])
        kernel_hw = (w_shape[1], w_shape[2])  # OHWI and (1, kh, kw, C*dm) alike
        same = []
        for size, k, d in zip(self.need_hwc(x, name)[:2], kernel_hw, block):
            top = conv_output_size(size, k, 1, d, "same")[1]
            same.append([top, (k - 1) * d - top])
        if effective_pads == [[0, 0], [0, 0]]:
            padding = "valid"
        elif effective_pads == same:
            # TensorFlow's and TFLite's SPACE_TO_BATCH_ND pad with the zero point (real 0): a 'same' dilated
            # convolution.  (TFLM's kernel leaves its pad value unset: for such files TFLM's border outputs
            # are not defined, see the README.)
            padding = "same"
        else:
            raise UnsupportedLayer(name, "dilated convolution padding", f"{effective_pads} (neither VALID nor SAME)")
        kind = "conv2d" if self.op_names.get(self._builtin(conv)) == "CONV_2D" else "depthwise_conv2d"
        self.weighted(op_index, conv, name, kind, lowered=(x, b2s.outputs[0], block, padding))

    @staticmethod
    def group_dilated(ops, codes, dilated_code: str):
        """Replace each SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND chain by one (``dilated_code``, the 3 ops)
        entry; :meth:`dilated` checks it."""
        out_ops, out_codes, i = [], [], 0
        while i < len(ops):
            if (codes[i] == "SPACE_TO_BATCH_ND" and i + 2 < len(ops)
                    and codes[i + 1] in ("CONV_2D", "DEPTHWISE_CONV_2D") and codes[i + 2] == "BATCH_TO_SPACE_ND"
                    and int(ops[i + 1].inputs[0]) == int(ops[i].outputs[0])
                    and int(ops[i + 2].inputs[0]) == int(ops[i + 1].outputs[0])):
                out_ops.append(tuple(ops[i:i + 3]))
                out_codes.append(dilated_code)
                i += 3
                continue
            out_ops.append(ops[i])
            out_codes.append(codes[i])
            i += 1
        return out_ops, out_codes
