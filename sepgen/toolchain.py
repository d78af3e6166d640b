"""Compilers and running binaries.  No distutils; compilers are found on PATH (or $CC).

Compiled executables are cached by the SHA-256 of their sources and flags under
``$SEPGEN_CACHE`` (default: ~/.cache/sepgen), so tests and repeated verifications
that render identical C share one build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

# Every build of generated C (host verification, sanitizer, Cortex-M) treats these warnings as errors, so
# every verified model is also proof that its C is warning-free.  gcc and clang both accept the set.
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wshadow", "-Wsign-conversion", "-pedantic",
            "-Werror")
# (clang -Weverything -Werror is checked too, by tests/test_c_warnings.py.)
HOST_FLAGS = WARNINGS + ("-O2",)
SANITIZE_FLAGS = WARNINGS + ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                             "-fno-omit-frame-pointer")


class ToolchainError(RuntimeError):
    """A compilation failed or a tool misbehaved (message includes the tool's output)."""


class ToolNotFound(ToolchainError, UserError):
    """A compiler or emulator the user asked for is not installed: a user error (exit 2 on the command line)."""


@dataclass(frozen=True)
class Compiler:
    path: str

    @property
    def name(self) -> str:
        return Path(self.path).name


def find_tool(name: str, package: str) -> str:
    """Absolute path of a program on PATH, or a ToolchainError naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        raise ToolNotFound(f"'{name}' not found on PATH (install the Debian package {package}, "
                             "e.g. with scripts/setup.sh)")
    return path


def find_host_compiler() -> Compiler:
    """$CC if set, else the first of cc, gcc, clang on PATH."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return Compiler(path)
    raise ToolNotFound("no C compiler found (install gcc, or set CC)")


def cache_dir() -> Path:
    root = Path(os.environ.get("SEPGEN_CACHE", Path.home() / ".cache" / "sepgen"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def compile_executable(sources: dict[str, str], flags: tuple[str, ...] = HOST_FLAGS,
                       defines: tuple[str, ...] = (), compiler: Compiler | None = None) -> Path:
    """Compile C sources given as {filename: text} into an executable; returns its (cached) path.

    Every file is written to one build directory, which is also the compiler's working directory,
    so flags may name non-C files among ``sources`` by relative path (a linker script: ``-T x.ld``).
    """
    compiler = compiler or find_host_compiler()
    key = hashlib.sha256()
    for part in (compiler.path, *flags, *defines):
        key.update(part.encode() + b"\0")
    for name in sorted(sources):
        key.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    exe = cache_dir() / f"exe-{key.hexdigest()[:32]}"
    if exe.is_file():
        return exe
    with tempfile.TemporaryDirectory(prefix="sepgen-build-") as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text)
        c_files = sorted(str(Path(tmp) / n) for n in sources if n.endswith(".c"))
        out = Path(tmp) / "a.out"
        cmd = [compiler.path, *flags, *(f"-D{d}" for d in defines), "-I", tmp, *c_files, "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise ToolchainError(f"{compiler.name} failed ({' '.join(flags)}):\n{proc.stderr[-4000:]}")
        partial = exe.with_suffix(f".{os.getpid()}.tmp")
        shutil.copy2(out, partial)
        os.replace(partial, exe)  # atomic: concurrent test workers may build the same key
    return exe


def run(cmd: list[str], timeout: float = 300.0, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run a command (stdin closed), capturing output; raises ToolchainError on timeout."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{cmd[0]} timed out after {timeout:.0f} s") from None
