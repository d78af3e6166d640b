"""Keeping TensorFlow, absl, Keras and the TFLite converter from printing on sepgen's terminal.

The converter writes from Python (``print`` of the exported signature, ``warnings``) and from C++
straight to file descriptors 1 and 2 ("fully_quantize: 0, ..."), so :func:`third_party` captures both
levels: ``sys.stdout``/``sys.stderr``, the ``warnings`` filters and the descriptors themselves.  The
captured text is dropped when the block succeeds and attached to the exception (``add_note``) when it
fails, so a crash still shows what TensorFlow said.  ``sepgen <command> --verbose`` (or
:func:`set_verbose`) lets everything through.

Given a ``label`` (``third_party("loading model.keras")``), the block shows a spinner line with the
elapsed seconds on the terminal while it runs (importing TensorFlow alone takes seconds): only when
standard error is a terminal, only after :data:`SPINNER_DELAY` seconds, and the line is erased when the
block ends, so logs and pipes never see it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
import time
import warnings
from typing import Iterator

SPINNER_DELAY = 0.5  # seconds before the spinner appears
SPINNER_FRAMES = "|/-\\"

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


class _Spinner:
    """``\\r<frame> <label> <seconds>s`` redrawn every 0.1 s on a copy of the terminal's descriptor."""

    def __init__(self, fd: int, label: str):
        self.fd, self.label, self.start = fd, label, time.monotonic()
        self.stop = threading.Event()
        self.shown = False
        self.thread = threading.Thread(target=self._run, name="sepgen-spinner", daemon=True)

    def _run(self) -> None:
        if self.stop.wait(SPINNER_DELAY):
            return
        frame = 0
        while not self.stop.is_set():
            elapsed = time.monotonic() - self.start
            self._write(f"\r{SPINNER_FRAMES[frame % len(SPINNER_FRAMES)]} {self.label} {elapsed:.0f}s")
            self.shown = True
            frame += 1
            self.stop.wait(0.1)

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode(errors="replace"))
        except OSError:
            self.stop.set()

    def __enter__(self) -> "_Spinner":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.shown:
            self._write("\r\x1b[K")  # erase the spinner line
        os.close(self.fd)


def spinner(label: str | None) -> contextlib.AbstractContextManager:
    """A spinner line ``label``, shown after :data:`SPINNER_DELAY` s while the block runs, on the terminal of
    fd 2 (written through a copy of it, so redirecting fd 2 inside the block does not hide it); nothing when
    fd 2 is not a terminal or sepgen runs ``--verbose``."""
    if _verbose:
        return contextlib.nullcontext()
    try:
        if label and os.isatty(2):
            return _Spinner(os.dup(2), label)
    except OSError:
        pass
    return contextlib.nullcontext()


@contextlib.contextmanager
def third_party(label: str | None = None) -> Iterator[None]:
    """Capture everything printed inside the block (unless verbose); with ``label``, show a spinner on a
    terminal meanwhile (see the module docstring)."""
    if _verbose:
        yield
        return
    _flush()
    with spinner(label), _captured():
        yield


@contextlib.contextmanager
def _captured() -> Iterator[None]:
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
