"""Keeping TensorFlow, absl, Keras and the TFLite converter from printing on sepgen's terminal.

The converter writes from Python (``print`` of the exported signature, ``warnings``) and from C++
straight to file descriptors 1 and 2 ("fully_quantize: 0, ..."), so :func:`third_party` captures both
levels: ``sys.stdout``/``sys.stderr``, the ``warnings`` filters and the descriptors themselves.  The
captured text is dropped when the block succeeds and attached to the exception (``add_note``) when it
fails, so a crash still shows what TensorFlow said.  ``sepgen <command> --verbose`` (or
:func:`set_verbose`) lets everything through.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from typing import Iterator

_verbose = bool(os.environ.get("SEPGEN_VERBOSE"))


def set_verbose(verbose: bool) -> None:
    """Let TensorFlow's and the converter's output through (True) or capture it (False, the default)."""
    global _verbose
    _verbose = bool(verbose)


def verbose() -> bool:
    return _verbose


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def third_party() -> Iterator[None]:
    """Capture everything printed inside the block (unless verbose)."""
    if _verbose:
        yield
        return
    _flush()
    with tempfile.TemporaryFile() as sink:
        saved = []
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # no such descriptor (a daemon): nothing to capture there
                    pass
            text = io.StringIO()
            try:
                with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield
            except BaseException as exc:
                _flush()
                sink.seek(0)
                said = (sink.read().decode(errors="replace") + text.getvalue()).strip().splitlines()
                if said and hasattr(exc, "add_note"):
                    exc.add_note("output of TensorFlow (run with --verbose to see it as it happens):\n"
                                 + "\n".join(said[-60:]))
                raise
        finally:
            _flush()
            for fd, copy in reversed(saved):
                os.dup2(copy, fd)
                os.close(copy)
