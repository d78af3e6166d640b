"""The VGG-style CIFAR-10 net built from SeparableConv2D (random weights), through
generate -> verify -> report, next to its standard-Conv2D twin's budget.

    python examples/vgg_cifar10.py [--out out/vgg]

32x32x3 input; blocks of two 3x3 'same' convolutions with 64, 128 and 256 filters,
each block ending in 2x2 max-pooling; Flatten; Dense 10 with softmax.  Parameters:
1,186,378 with Conv2D, 174,821 with SeparableConv2D.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import sepgen
from sepgen import report, zoo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/vgg", help="directory for the generated C")
    parser.add_argument("--inputs", type=int, default=20, help="random int8 inputs to verify with")
    args = parser.parse_args(argv)

    standard = zoo.vgg_cifar10(separable=False)
    separable = zoo.vgg_cifar10(separable=True)
    rng = np.random.default_rng(0)
    calibration = rng.uniform(0.0, 1.0, size=(32, 32, 32, 3)).astype(np.float32)  # CIFAR-like pixels
    prepared = sepgen.prepare(separable, calibration)
    print(f"quantized: {prepared.agreement}")
    out = sepgen.generate(prepared.graph, args.out, prefix="vgg")
    print(f"wrote {out}")
    result = sepgen.verify(prepared.graph, count=args.inputs, prefix="vgg")
    print(f"verify: {'ok, byte-exact on' if result.ok else 'MISMATCH ' + str(result.mismatch)} "
          f"{result.samples} inputs x {result.layers} layers")
    sep_budget, std_budget = sepgen.budget(prepared.graph), sepgen.budget(standard)
    print(report.to_text(sep_budget))
    print(f"\nparams: SeparableConv2D {sep_budget.totals.params:,} vs Conv2D {std_budget.totals.params:,}; "
          f"MACs: {sep_budget.totals.macs:,} vs {std_budget.totals.macs:,}")
    ok = result.ok and sep_budget.totals.params == 174_821 and std_budget.totals.params == 1_186_378
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
