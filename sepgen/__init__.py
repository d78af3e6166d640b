"""sepgen: depthwise-separable CNNs -> int8 -> fixed-size C, verified bit for bit."""

__version__ = "0.1.0"
