"""Writing output without ever destroying a file sepgen did not create.

Rules (the README's "Output files" section states them for users):

* An output directory is written whole into a fresh sibling directory, then moved into place, so a
  reader never sees half of it.  The move happens with SIGINT/SIGTERM/SIGHUP held back, so an
  interrupt cannot strand the previous output in a hidden sibling.
* An existing target directory is replaced only when it is empty or is sepgen's own earlier output:
  it holds one ``<prefix>.sepgen.json`` whose ``files`` manifest lists, with their SHA-256, every
  other file of the directory (files in sub-folders by their ``/``-separated relative path, e.g. the
  ``src/`` of an Arduino layout).  A file that was changed since sepgen wrote it is replaced only with
  ``force``; a file the manifest does not list (a user's notes, a sub-folder holding one) is never
  deleted: the write is refused, ``force`` or not.  A sub-folder is removed only once every file in
  it was (it then holds nothing else).
* A directory that contains (at any depth) one of the command's input files, a regular file, or a
  path below a regular file is refused.
* A single output file (an HTML report, a .npy array) is written at exactly the path given, through a
  temporary sibling and ``os.replace``.  An existing file is replaced only when it is recognisably
  sepgen's (``is_ours``, or its SHA-256 is in the journal of files sepgen wrote, kept in the cache
  directory) or with ``force``; an input file never.

New directories and files get the permissions the user's umask gives (not ``mkdtemp``'s 0700).
Every refusal is an :class:`~sepgen.errors.OutputRefused` (one line, exit 2 on the command line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import OutputRefused

MANIFEST_SUFFIX = ".sepgen.json"
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back interrupt/termination signals (delivered when the block ends)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    """Resolved paths of the input files that exist (in-memory models and arrays are None)."""
    return [Path(p).resolve() for p in inputs if isinstance(p, (str, Path)) and Path(p).exists()]


def _check_parent(path: Path, shown: str) -> None:
    """Refuse a path whose existing ancestor is not a directory (``file.txt/sub``)."""
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise OutputRefused(f"{shown}: '{ancestor}' is a file, not a directory")
            return


# ----------------------------------------------------------------- directories
def manifest_of(directory: Path) -> tuple[str, dict[str, str | None]] | None:
    """(manifest file name, {file name: sha256}) if ``directory`` is sepgen's output, else None.

    Output of sepgen 0.1.0 has no manifest: its four files are recognised by name (digest None).
    """
    found = sorted(directory.glob("*" + MANIFEST_SUFFIX))
    if len(found) != 1 or not found[0].is_file() or found[0].is_symlink():
        return None
    try:
        doc = json.loads(found[0].read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != "sepgen-graph":
        return None
    files = doc.get("files")
    if files is None:
        prefix = found[0].name[: -len(MANIFEST_SUFFIX)]
        return found[0].name, dict.fromkeys((f"{prefix}.h", f"{prefix}.c", f"{prefix}.sepgen.npz",
                                             "sepgen_fixedpoint.h"))
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    return found[0].name, files


def _tree(directory: Path) -> list[str]:
    """Relative ``/``-separated paths of every entry below ``directory`` (symbolic links not followed)."""
    found = []
    for name in sorted(os.listdir(directory)):
        found.append(name)
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            found += [f"{name}/{sub}" for sub in _tree(path)]
    return sorted(found)


def _replaceable(out: Path, shown: str, force: bool) -> list[str]:
    """Relative paths of the entries of an existing directory that may be deleted; refuses otherwise."""
    top = sorted(os.listdir(out))
    if not top:
        return []
    manifest = manifest_of(out)
    if manifest is None:
        raise OutputRefused(f"{shown}: directory is not empty and was not written by sepgen (it holds "
                            f"'{top[0]}'{' and more' if len(top) > 1 else ''}); choose a new or empty "
                            "directory")
    manifest_name, files = manifest
    entries = _tree(out)
    for name in entries:
        path = out / name
        if name == manifest_name:
            continue
        if path.is_dir() and not path.is_symlink() and any(f.startswith(name + "/") for f in files):
            continue  # a sub-folder of sepgen's files: each of its entries is checked on its own
        if name not in files or path.is_symlink() or not path.is_file():
            raise OutputRefused(f"{shown}: holds '{name}', which sepgen did not write; move it away or choose "
                                "another directory (sepgen never deletes files it did not create)")
        if files[name] is not None and sha256(path.read_bytes()) != files[name] and not force:
            raise OutputRefused(f"{shown}: '{name}' was changed since sepgen wrote it; pass --force to replace "
                                "it with the new output")
    return entries


def check_directory(out_dir: str | Path, inputs: Iterable[str | Path | None] = (),
                    force: bool = False) -> tuple[Path, list[str]]:
    """(resolved directory, names of its entries that writing will delete); OutputRefused when writing
    ``out_dir`` could destroy something sepgen did not create.  Cheap: call it before long work."""
    shown = str(out_dir)
    given = Path(out_dir)
    if given.is_symlink() and not given.exists():
        raise OutputRefused(f"{shown}: is a broken symbolic link")
    out = given.resolve()
    if out.exists() and not out.is_dir():
        raise OutputRefused(f"{shown}: is a file, not a directory (sepgen writes a directory of C files)")
    _check_parent(out, shown)
    for path in _inputs(inputs):
        if path == out or out in path.parents:
            raise OutputRefused(f"{shown}: contains the input file '{path.name}'; write the output to a "
                                "new directory")
    return out, (_replaceable(out, shown, force) if out.exists() else [])


def write_directory(out_dir: str | Path, files: dict[str, bytes], manifest_name: str,
                    inputs: Iterable[str | Path | None] = (), force: bool = False) -> Path:
    """Write ``files`` as the directory ``out_dir``, atomically, under the rules of this module.

    ``manifest_name`` is the file of ``files`` (a sepgen-graph JSON document) that receives the
    ``files`` manifest: the SHA-256 of every other file.  Returns the resolved directory.
    """
    shown = str(out_dir)
    out, doomed = check_directory(out_dir, inputs, force)

    for name in files:
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"output file name {name!r} is not a plain relative path")
    doc = json.loads(files[manifest_name])
    doc["files"] = {name: sha256(data) for name, data in sorted(files.items()) if name != manifest_name}
    files = {**files, manifest_name: json.dumps(doc, indent=1).encode()}

    out.parent.mkdir(parents=True, exist_ok=True)
    mode = (out.stat().st_mode & 0o7777) if out.exists() else (0o777 & ~_umask())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.sepgen-tmp-", dir=out.parent))
    try:
        for name, data in files.items():
            if "/" in name:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                os.chmod((tmp / name).parent, mode)
            (tmp / name).write_bytes(data)
        os.chmod(tmp, mode)
        with _signals_held():
            if out.exists():
                if _tree(out) != doomed:  # changed while we were writing
                    doomed = _replaceable(out, shown, force)
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.sepgen-old-", dir=out.parent))
                try:
                    os.replace(out, old / "previous")
                    try:
                        os.replace(tmp, out)
                    except BaseException:
                        os.replace(old / "previous", out)  # put the previous output back, whole
                        raise
                    for name in sorted(doomed, reverse=True):  # only files sepgen wrote (checked above),
                        gone = old / "previous" / name          # a folder after what it held
                        if gone.is_dir() and not gone.is_symlink():
                            gone.rmdir()
                        else:
                            gone.unlink()
                    (old / "previous").rmdir()
                finally:
                    if old.exists() and not (old / "previous").exists():
                        old.rmdir()
            else:
                os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------- files
def check_file(path: str | Path, inputs: Iterable[str | Path | None] = (), force: bool = False,
               is_ours: Callable[[bytes], bool] | None = None) -> tuple[Path, int]:
    """(absolute path, mode to give the file); OutputRefused when writing ``path`` could destroy a file
    sepgen did not create.  Cheap: call it before long work."""
    shown = str(path)
    path = Path(path)
    if path.is_symlink():
        raise OutputRefused(f"{shown}: is a symbolic link; give the path of the file itself")
    if path.exists() and not path.is_file():
        raise OutputRefused(f"{shown}: is a directory or special file, not a file path")
    real = path.absolute()
    _check_parent(real, shown)
    if any(real.resolve() == p for p in _inputs(inputs)):
        raise OutputRefused(f"{shown}: is an input file of this command; write the output elsewhere")
    if not path.exists():
        return real, 0o666 & ~_umask()
    data = path.read_bytes()
    if not force and not (is_ours is not None and is_ours(data)) and not _wrote(data):
        raise OutputRefused(f"{shown}: exists and sepgen cannot tell that it wrote it; pass --force to "
                            "overwrite it")
    return real, path.stat().st_mode & 0o7777


def _journal() -> Path:
    from .toolchain import cache_dir

    return cache_dir() / "written-files.sha256"


def _wrote(data: bytes) -> bool:
    """True if sepgen wrote a file with exactly these bytes (the journal of :func:`write_file`)."""
    try:
        return sha256(data) in _journal().read_text().split()
    except OSError:
        return False


def _remember(data: bytes) -> None:
    """Journal the digest of a file just written (capped: the newest 1000 digests are kept)."""
    try:
        journal = _journal()
        digests = journal.read_text().split() if journal.exists() else []
        digests = (digests + [sha256(data)])[-1000:]
        tmp = journal.with_name(f"{journal.name}.{os.getpid()}.tmp")
        tmp.write_text("\n".join(digests) + "\n")
        os.replace(tmp, journal)
    except OSError:  # a read-only cache only costs the recognition of this file later
        pass


def write_file(path: str | Path, data: bytes, inputs: Iterable[str | Path | None] = (), force: bool = False,
               is_ours: Callable[[bytes], bool] | None = None) -> Path:
    """Write ``data`` at exactly ``path`` (atomically) under the rules of this module."""
    real, mode = check_file(path, inputs, force, is_ours)
    real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{real.name}.sepgen-tmp-", dir=real.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        with _signals_held():
            os.replace(tmp, real)
    finally:
        if tmp.exists():
            tmp.unlink()
    _remember(data)
    return real
