"""sepgen: depthwise-separable CNNs -> int8 -> fixed-size C, verified bit for bit.

The public API (re-exports only)::

    graph = sepgen.load("model.keras")                 # float Graph (int8 for .tflite)
    qgraph = sepgen.quantize(graph, calibration)        # int8 Graph, TFLite int8 spec
    sepgen.generate(qgraph, "out/", prefix="kws")       # C sources + saved graph
    sepgen.verify(qgraph)                                # C == simulator, byte for byte
    sepgen.budget(graph)                                 # MACs, params, flash, RAM

Errors the user can fix (bad model, data, option or output path) derive from ``sepgen.UserError``
(a ``ValueError``) and carry a one-line message naming the file or layer; anything else is a bug.
"""

__version__ = "0.1.0"

from .budget import budget  # noqa: E402  (the function shadows the submodule name on purpose)
from .api import MissingCalibration, generate, load_generated, prepare, verify  # noqa: E402
from .errors import DataError, OutputRefused, UserError  # noqa: E402
from .evaluate import agreement  # noqa: E402
from .frontends import ModelFileError, load  # noqa: E402
from .ir import Graph, UnsupportedLayer  # noqa: E402
from .quantize import quantize  # noqa: E402
from .simulate import run, run_float  # noqa: E402


__all__ = ["DataError", "Graph", "MissingCalibration", "ModelFileError", "OutputRefused", "UnsupportedLayer",
           "UserError", "agreement", "budget", "generate", "load", "load_generated", "prepare", "quantize", "run",
           "run_float", "verify"]
