"""The ops: one module per op, each owning everything about it (see :class:`sepgen.ir.Layer`).

Importing this package registers every op in :data:`sepgen.ir.LAYER_TYPES`.  Adding an op is one new
module here (or anywhere: defining a :class:`~sepgen.ir.Layer` subclass with an ``op`` registers it)
plus its template ``templates/layers/<op>.c.j2``.
"""

from .add import Add
from .concatenation import Concatenation
from .conv2d import Conv2D
from .depthwise_conv2d import DepthwiseConv2D
from .fully_connected import FullyConnected
from .hard_swish import HardSwish
from .leaky_relu import LeakyRelu
from .logistic import Logistic, logistic_params
from .mean import Mean
from .min_max import Maximum, Minimum
from .mul import Mul
from .pad import Pad
from .pool import AvgPool2D, MaxPool2D, PoolLayer
from .relu import Relu
from .rescaling import Rescaling
from .reshape import Reshape
from .resize_nearest import ResizeNearest
from .softmax import OUTPUT_QUANT as SOFTMAX_OUTPUT, Softmax, softmax_params
from ._common import SpatialLayer, WeightedLayer

#: The ops shipped with sepgen (the registry test checks each against every frontend and backend).
BUILTIN_OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "max_pool2d", "avg_pool2d", "mean", "add",
               "softmax", "reshape", "pad", "relu", "leaky_relu", "logistic",
               "hard_swish", "mul", "concatenation", "maximum", "minimum",
               "resize_nearest", "rescaling")

__all__ = ["Add", "AvgPool2D", "BUILTIN_OPS", "Concatenation", "Conv2D", "DepthwiseConv2D", "FullyConnected",
           "HardSwish", "LeakyRelu", "Logistic", "MaxPool2D", "Maximum", "Mean", "Minimum", "Mul", "Pad", "PoolLayer", "Relu", "Rescaling", "Reshape", "ResizeNearest", "SOFTMAX_OUTPUT", "Softmax", "SpatialLayer", "WeightedLayer",
           "logistic_params", "softmax_params"]
