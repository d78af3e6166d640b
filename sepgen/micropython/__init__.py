"""MicroPython backends of a generated model, all with one Python-facing API::

    import <prefix>
    <prefix>.invoke(input, output)   # input: bytes-like, INPUT_SIZE int8 (NHWC); output: bytearray, OUTPUT_SIZE
    <prefix>.INPUT_SIZE, OUTPUT_SIZE, INPUT_SCALE, INPUT_ZERO_POINT, OUTPUT_SCALE, OUTPUT_ZERO_POINT

* ``natmod``: a native module (.mpy with machine code, imported at run time without reflashing), built
  from the generated C and a small binding with MicroPython's natmod tooling (:mod:`.build`);
* ``usercmod``: the same C and binding as a user C module (micropython.mk / micropython.cmake) for
  people who build their own firmware;
* ``python``: a pure MicroPython module (``<prefix>.py``, hot loops in ``<prefix>_viper.py`` under
  ``@micropython.viper``, with a plain fallback) with the simulator's exact integer arithmetic.

:mod:`.sources` renders the files, :mod:`.build` builds them, :mod:`.run` runs them inside MicroPython.
"""

from .sources import BACKENDS, binding_name, render

__all__ = ["BACKENDS", "binding_name", "render"]
