"""Error classes shared by every module.

:class:`UserError` is the one base of everything a user can cause and fix: a model sepgen
cannot compile, a corrupt or wrong file, bad calibration data, an output path sepgen refuses
to write.  The command line prints such an error as one line and exits 2.  Any other
exception is a bug in sepgen: the command line keeps its traceback, asks for a report and
exits 1.  ``UserError`` derives from ``ValueError`` so that API callers who caught
``ValueError`` keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (model, data, option or path).  The message is one line and names
    the file or layer concerned and what is supported."""


class DataError(UserError):
    """An input array (calibration data, verification or simulation inputs) sepgen cannot use."""


class OutputRefused(UserError):
    """An output path sepgen will not write, because doing so could destroy a file it did not create."""


def one_line(text: object, limit: int = 300) -> str:
    """``text`` with all whitespace runs collapsed to one space, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
