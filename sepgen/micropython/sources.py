"""Render the MicroPython backends' files from the templates in ``templates/micropython/``."""

from __future__ import annotations

from .. import __version__, codegen
from ..errors import UserError
from ..ir import Graph

#: backend -> what it is (``sepgen generate --micropython``).
BACKENDS = {
    "natmod": "native module: binding C + Makefile for py/dynruntime.mk (make MPY_DIR=... ARCH=...)",
    "usercmod": "user C module: binding C + micropython.mk + micropython.cmake (USER_C_MODULES=...)",
    "python": "pure MicroPython module <prefix>.py (+ <prefix>_viper.py with @micropython.viper hot loops)",
}


def binding_name(prefix: str) -> str:
    """The binding's C file (not part of the plain C model: host builds leave it out)."""
    return f"{codegen.c_ident(prefix)}_micropython.c"


def _context(graph: Graph, prefix: str, c_files: list[str]) -> dict:
    return dict(version=__version__, prefix=codegen.check_prefix(prefix), PREFIX=prefix.upper(),
                input=graph.tensors[graph.input], output=graph.tensors[graph.output], source=graph.source,
                sha=(graph.source_sha256 or "no digest")[:12],
                # the binding first: mpy_ld places the first object's code first, and the module's entry
                # (mpy_init) must come before the model's code or the import crashes
                sources=[binding_name(prefix)] + sorted(c_files))


def render(graph: Graph, prefix: str, backends: tuple[str, ...], c_files: list[str]) -> dict[str, str]:
    """The MicroPython files of ``backends`` for a model whose C files are named ``c_files``: {name: text}."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UserError(f"unknown MicroPython backend '{unknown[0]}' (choose from {', '.join(BACKENDS)})")
    env = codegen.environment()
    context = _context(graph, prefix, [n for n in c_files if n.endswith(".c")])
    files: dict[str, str] = {}
    if "natmod" in backends or "usercmod" in backends:
        files[binding_name(prefix)] = env.get_template("micropython/binding.c.j2").render(context)
    if "natmod" in backends:
        files["Makefile"] = env.get_template("micropython/Makefile.j2").render(context)
    if "usercmod" in backends:
        files["micropython.mk"] = env.get_template("micropython/micropython.mk.j2").render(context)
        files["micropython.cmake"] = env.get_template("micropython/micropython.cmake.j2").render(context)
    if "python" in backends:
        from .pymodule import render_python

        files.update(render_python(graph, prefix))
    return files
