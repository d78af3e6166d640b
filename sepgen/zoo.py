"""Reference networks with random weights, shared by examples, tests and benchmarks.

``vgg_cifar10`` is the VGG-style CIFAR-10 net: a 32x32x3 input; three blocks of two 3x3 'same'
convolutions (64, 128, 256 filters, ReLU), each block ending in 2x2 max-pooling; Flatten; Dense 10
with softmax.  1,186,378 parameters with Conv2D, 174,821 with SeparableConv2D.
"""

from __future__ import annotations

import numpy as np

from .frontends.builder import GraphBuilder
from .ir import Graph

VGG_FILTERS = (64, 128, 256)
VGG_INPUT = (32, 32, 3)
VGG_CLASSES = 10


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """He-normal weights: N(0, 2 / fan_in)."""
    return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.normal(size=n) * 0.05).astype(np.float32)


def vgg_cifar10(separable: bool, seed: int = 0) -> Graph:
    """The VGG-style CIFAR-10 net as a float Graph with random He-scaled weights and small biases.

    ``separable`` uses Keras SeparableConv2D (depthwise without bias + pointwise with bias) in place
    of every Conv2D; layer names follow Keras (``block1_conv1``, ``block1_pool``, ...; a separable
    layer becomes ``block1_sepconv1/depthwise`` + ``block1_sepconv1/pointwise``).
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder(VGG_INPUT, name="vgg_cifar10_separable" if separable else "vgg_cifar10")
    x, cin = b.input, VGG_INPUT[2]
    for block, filters in enumerate(VGG_FILTERS, start=1):
        for conv in (1, 2):
            if separable:
                dw = _he(rng, (3, 3, cin, 1), 9)
                pw = _he(rng, (1, 1, cin, filters), cin)
                x = b.separable_conv2d(f"block{block}_sepconv{conv}", x, dw, pw, _bias(rng, filters),
                                       padding="same", activation="relu")
            else:
                kernel = _he(rng, (3, 3, cin, filters), 9 * cin)
                x = b.conv2d(f"block{block}_conv{conv}", x, kernel, _bias(rng, filters), padding="same",
                             activation="relu")
            cin = filters
        x = b.max_pool2d(f"block{block}_pool", x, 2)
    x = b.flatten("flatten", x)
    features = b.shape(x)[0]
    x = b.dense("predictions", x, _he(rng, (features, VGG_CLASSES), features), _bias(rng, VGG_CLASSES),
                activation="softmax")
    return b.build(x)


def vgg_cifar10_keras(separable: bool, seed: int | None = None):
    """The same net as an (uncompiled) Keras model.  Imports Keras lazily.

    With ``seed`` the kernel initializers are seeded (per layer), so the weights are reproducible
    without touching Keras' global random state.
    """
    import keras
    from keras import layers

    counter = iter(range(1_000))

    def init():
        return "glorot_uniform" if seed is None else keras.initializers.HeNormal(seed=seed + next(counter))

    model = keras.Sequential(name="vgg_cifar10_separable" if separable else "vgg_cifar10")
    model.add(keras.Input(shape=VGG_INPUT))
    for block, filters in enumerate(VGG_FILTERS, start=1):
        for conv in (1, 2):
            if separable:
                model.add(layers.SeparableConv2D(filters, 3, padding="same", activation="relu",
                                                 depthwise_initializer=init(), pointwise_initializer=init(),
                                                 name=f"block{block}_sepconv{conv}"))
            else:
                model.add(layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init(),
                                        name=f"block{block}_conv{conv}"))
        model.add(layers.MaxPooling2D(2, name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(VGG_CLASSES, activation="softmax", kernel_initializer=init(), name="predictions"))
    return model


def ds_cnn_kws(seed: int = 0, blocks: int = 4, channels: int = 64) -> Graph:
    """The MLPerf Tiny DS-CNN keyword-spotting architecture as a float Graph, random weights.

    Input 49x10x1 (MFCC); Conv2D 64 10x4 stride 2 'same' + ReLU (BatchNorm folded); four blocks of
    DepthwiseConv2D 3x3 'same' + ReLU and Conv2D 64 1x1 + ReLU; AveragePooling2D over 25x5; Flatten;
    Dense 12; Softmax.
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder((49, 10, 1), name="ds_cnn_kws")
    y = b.conv2d("conv1", b.input, _he(rng, (10, 4, 1, channels), 40), _bias(rng, channels), 2, 1, "same", "relu")
    for i in range(1, blocks + 1):
        y = b.depthwise_conv2d(f"dw{i}", y, _he(rng, (3, 3, channels, 1), 9), _bias(rng, channels), 1, 1, "same",
                               "relu")
        y = b.conv2d(f"pw{i}", y, _he(rng, (1, 1, channels, channels), channels), _bias(rng, channels),
                     activation="relu")
    y = b.avg_pool2d("pool", y, (25, 5))
    y = b.dense("fc", b.flatten("flatten", y), _he(rng, (channels, 12), channels), _bias(rng, 12), "softmax")
    return b.build(y)


#: MobileNetV1's separable blocks after the stem: (depthwise stride, pointwise filters at width 1.0)
MOBILENET_V1_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
                       (1, 512), (1, 512), (2, 1024), (1, 1024))


def mobilenet_v1_025(seed: int = 0, size: int = 96, classes: int = 2) -> Graph:
    """MobileNetV1 width 0.25 (the visual-wake-words shape: 96x96x3, 2 classes) as a float Graph, random
    weights: Conv2D 8 3x3 stride 2 'same' + ReLU6, 13 blocks of DepthwiseConv2D 3x3 'same' + ReLU6 and
    Conv2D 1x1 + ReLU6 (BatchNorm folded), global average pool, Dense + softmax.  Same shapes as
    :func:`mobilenet_v1_025_keras`."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder((size, size, 3), name="mobilenet_v1_025")
    y = b.conv2d("conv1", b.input, _he(rng, (3, 3, 3, 8), 27), _bias(rng, 8), 2, 1, "same", "relu6")
    c = 8
    for i, (stride, filters) in enumerate(MOBILENET_V1_BLOCKS, 1):
        y = b.depthwise_conv2d(f"dw{i}", y, _he(rng, (3, 3, c, 1), 9), _bias(rng, c), stride, 1, "same", "relu6")
        y = b.conv2d(f"pw{i}", y, _he(rng, (1, 1, c, filters // 4), c), _bias(rng, filters // 4), activation="relu6")
        c = filters // 4
    y = b.dense("fc", b.global_avg_pool2d("gap", y), _he(rng, (c, classes), c), _bias(rng, classes), "softmax")
    return b.build(y)


def ds_cnn_block(seed: int = 0) -> Graph:
    """One DS-CNN block: 25x5x64 input, depthwise 3x3 'same' + ReLU, pointwise 64->64 + ReLU."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder((25, 5, 64), name="ds_cnn_block")
    y = b.depthwise_conv2d("dw", b.input, _he(rng, (3, 3, 64, 1), 9), _bias(rng, 64), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, _he(rng, (1, 1, 64, 64), 64), _bias(rng, 64), activation="relu")
    return b.build(y)


def randomize_keras_weights(model, seed: int) -> None:
    """Non-trivial weights, biases and BatchNorm statistics (not the Keras initial values)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        for w, var in zip(weights, layer.weights):
            if "moving_variance" in var.path:
                new.append(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
            elif "gamma" in var.path:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
            elif w.ndim == 1:
                new.append((rng.normal(size=w.shape) * 0.1).astype(np.float32))
            else:
                fan_in = int(np.prod(w.shape[:-1])) if "depthwise" not in var.path else int(np.prod(w.shape[:2]))
                new.append((rng.normal(size=w.shape) / np.sqrt(fan_in)).astype(np.float32))
        layer.set_weights(new)


def ds_cnn_kws_keras():
    """DS-CNN keyword spotting as a Keras model (BatchNorm not folded), batch 1, Keras initial weights."""
    import keras

    L = keras.layers
    x = inp = keras.Input((49, 10, 1), batch_size=1)
    x = L.Conv2D(64, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.Conv2D(64, 1, use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    x = L.Softmax()(L.Dense(12)(x))
    return keras.Model(inp, x)


def mobilenet_v1_025_keras():
    """MobileNetV1 width 0.25 on 96x96x3 (13 separable blocks, 2 classes) as a Keras model, batch 1."""
    import keras

    L = keras.layers

    def bn_relu6(x):
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    x = inp = keras.Input((96, 96, 3), batch_size=1)
    x = bn_relu6(L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x))
    for stride, channels in zip([1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1],
                                [16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]):
        x = bn_relu6(L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x))
        x = bn_relu6(L.Conv2D(channels, 1, use_bias=False)(x))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Softmax()(L.Dense(2)(x))
    return keras.Model(inp, x)
