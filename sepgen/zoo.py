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
