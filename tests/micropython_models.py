"""Models for the MicroPython tests: digits-shaped (8x8x1, every op the digits example uses plus pad, add,
avg-pool; pools with padding on every side, the global pool as mean), DS-CNN keyword spotting (sepgen.zoo) and
single ops (pooling, softmax), quantized with random weights."""

from __future__ import annotations

import numpy as np

from sepgen import zoo
from sepgen.frontends.builder import GraphBuilder
from sepgen.ir import Graph

from util import quantized, rand


def digits_like(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    b = GraphBuilder((8, 8, 1), name="digits_like")
    x = b.conv2d("stem", b.input, rand(rng, 3, 3, 1, 8), rand(rng, 8, scale=0.1), padding="same", activation="relu6")
    x = b.separable_conv2d("sep1", x, rand(rng, 3, 3, 8, 1), rand(rng, 1, 1, 8, 12), rand(rng, 12, scale=0.1),
                           padding="same", activation="relu")
    x = b.max_pool2d("pool", x, 3, strides=2, padding="same")  # edge windows: fewer taps
    skip = x
    x = b.pad("pad", x, ((1, 1), (1, 1)))
    x = b.depthwise_conv2d("dw2", x, rand(rng, 3, 3, 12, 1), rand(rng, 12, scale=0.1), strides=1, padding="valid",
                           activation="relu")
    x = b.add("res", [x, skip])
    x = b.conv2d("pw2", x, rand(rng, 1, 1, 12, 16), rand(rng, 16, scale=0.1), activation="relu")
    x = b.avg_pool2d("avg", x, 3, strides=1, padding="same")  # padding on every side
    x = b.global_avg_pool2d("gap", x)
    x = b.dense("classifier", x, rand(rng, 16, 10), rand(rng, 10, scale=0.1))
    return b.build(b.softmax("softmax", x))


#: One op alone on a 7x6x5 input (its output is the model's: nothing downstream hides a wrong byte): pooling with
#: padding on both sides with windows of 4 to 16 taps, stride 2 with padding, a valid window, the mean; softmax
#: over 40 values (its exp tables), also on a wide input scale (differences below diff_min give -128).
SINGLE_OPS = {"avgsame": lambda b, x: b.avg_pool2d("p", x, 4, strides=1, padding="same"),
              "maxsame": lambda b, x: b.max_pool2d("p", x, 3, strides=2, padding="same"),
              "avgvalid": lambda b, x: b.avg_pool2d("p", x, (3, 2), strides=(2, 2), padding="valid"),
              "mean": lambda b, x: b.global_avg_pool2d("p", x),
              "softmax": lambda b, x: b.softmax("p", x),
              "softmaxwide": lambda b, x: b.softmax("p", x)}


def single_op_model(prefix: str) -> Graph:
    b = GraphBuilder((40,) if prefix.startswith("softmax") else (7, 6, 5), name=prefix)
    return b.build(SINGLE_OPS[prefix](b, b.input))


def models() -> dict[str, tuple[Graph, np.ndarray]]:
    """{prefix: (int8 graph, int8 inputs)}."""
    digits = quantized(digits_like(), np.random.default_rng(1))
    kws = quantized(zoo.ds_cnn_kws(), np.random.default_rng(2))
    single = {p: quantized(single_op_model(p), np.random.default_rng(3 + i), "wide" if p == "softmaxwide" else "normal")
              for i, p in enumerate(SINGLE_OPS)}
    return {"digits": digits, "kws": (kws[0], kws[1][:12]), **single}
