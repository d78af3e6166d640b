"""The fixed-point primitives of the MicroPython ``.py`` backend, generated from :mod:`sepgen.fixedpoint`.

:mod:`sepgen.fixedpoint` is the one definition of sepgen's integer arithmetic, written over NumPy arrays.
This module translates the source of the functions a model needs into scalar Python that MicroPython runs
(arbitrary-precision ints), by rewriting the syntax tree:

* ``np.where(c, a, b)`` -> ``(a if c else b)``; ``np.maximum`` / ``np.minimum`` -> ``max`` / ``min``;
* ``_i64(x)``, ``np.int64(x)`` -> ``x``; ``np.full(shape, v, ...)`` -> ``v``;
* annotations and docstrings dropped; module constants (``INT32_MIN``, ``_EXP_BARREL``, ...) copied as values.

Any other ``np.`` use is refused, so a change to :mod:`sepgen.fixedpoint` that the translation cannot carry
fails generation (and tests) instead of producing different arithmetic.  Names keep a ``_fp_`` prefix in the
generated module.  ``tests/test_micropython_fixedpoint.py`` runs the translation in CPython against the NumPy
originals.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

from .. import fixedpoint

PREFIX = "_fp_"
#: The primitives the .py backend's op templates call, with what they call (translated in this order).
FUNCTIONS = ("wrap_int32", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
             "multiply_by_quantized_multiplier", "rounded_divide", "clamp", "saturating_left_shift",
             "rounding_half_sum", "_fx_mul", "_exp_on_interval_between_negative_one_quarter_and_0_excl",
             "exp_on_negative_values", "one_over_one_plus_x_for_x_in_0_1", "count_leading_zeros_u32",
             "get_reciprocal")
_FUNCTION_NAMES = set(FUNCTIONS)


class UntranslatableFixedPoint(ValueError):
    """sepgen.fixedpoint uses a construct the MicroPython translation does not carry."""


def _is_np(node: ast.AST, name: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Name)
            and node.value.id == "np")


_CHEAP = (ast.Name, ast.Constant, ast.Load, ast.IfExp, ast.Compare, ast.UnaryOp, ast.USub, ast.Gt, ast.Lt)


def _cheap(node: ast.AST) -> bool:
    """Names, literals, negation and conditionals of them: no calls and no arithmetic to repeat."""
    return all(isinstance(n, _CHEAP) for n in ast.walk(node))


class _Scalar(ast.NodeTransformer):
    def __init__(self, constants: dict[str, object]):
        self.constants = constants

    def visit_Call(self, node: ast.Call) -> ast.AST:
        known = (any(_is_np(node.func, n) for n in ("where", "maximum", "minimum", "int64", "full"))
                 or (isinstance(node.func, ast.Name) and node.func.id == "_i64"))
        if not known:
            return self.generic_visit(node)
        node.args = [self.visit(arg) for arg in node.args]
        if _is_np(node.func, "where") and len(node.args) == 3:
            return ast.IfExp(test=node.args[0], body=node.args[1], orelse=node.args[2])
        if _is_np(node.func, "maximum") or _is_np(node.func, "minimum"):
            a, b = node.args
            if _cheap(a) and _cheap(b):  # no call: a conditional (re-evaluating a and b costs less than a call)
                op = ast.Gt() if node.func.attr == "maximum" else ast.Lt()
                return ast.IfExp(ast.Compare(a, [op], [b]), a, b)
            return ast.Call(ast.Name("max" if node.func.attr == "maximum" else "min", ast.Load()), node.args, [])
        if (isinstance(node.func, ast.Name) and node.func.id == "_i64") or _is_np(node.func, "int64"):
            return node.args[0]
        if _is_np(node.func, "full"):
            return node.args[1]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "np":
            raise UntranslatableFixedPoint(f"sepgen.fixedpoint uses np.{node.attr}, which has no MicroPython "
                                           "translation (sepgen.micropython.pyfixedpoint)")
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _FUNCTION_NAMES:
            node.id = PREFIX + node.id.lstrip("_")
        elif node.id in self.constants:
            return ast.copy_location(ast.parse(repr(self.constants[node.id]), mode="eval").body, node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = PREFIX + node.name.lstrip("_")
        node.returns = None
        for arg in node.args.args:
            arg.annotation = None
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        node.body = body
        self.generic_visit(node)
        # ``x = _i64(x)`` became ``x = x``: drop such no-op assignments
        node.body = [stmt for stmt in node.body if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                                                       and ast.dump(stmt.targets[0]).replace("Store", "Load")
                                                       == ast.dump(stmt.value))]
        return node


def _constants() -> dict[str, object]:
    return {name: value for name, value in vars(fixedpoint).items()
            if not name.startswith("__") and isinstance(value, (int, tuple)) and not isinstance(value, bool)}


def translate(names: tuple[str, ...] = FUNCTIONS) -> str:
    """Scalar Python source of the fixed-point functions ``names`` (``_fp_<name>``), in that order."""
    transformer = _Scalar(_constants())
    parts = []
    for name in names:
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(fixedpoint, name))))
        tree = transformer.visit(tree)
        parts.append(ast.unparse(ast.fix_missing_locations(tree)))
    return "\n\n\n".join(parts) + "\n"


def name(function: str) -> str:
    """The generated module's name of :mod:`sepgen.fixedpoint`'s ``function``."""
    if function not in FUNCTIONS:
        raise KeyError(f"{function} is not translated for MicroPython (sepgen.micropython.pyfixedpoint.FUNCTIONS)")
    return PREFIX + function.lstrip("_")


def inline(function: str, *args: str) -> str:
    """The translated body of a one-expression ``function`` (e.g. ``clamp``) with its parameters replaced by
    ``args`` (identifiers or literals: each may be used more than once), for hot loops where a call costs more
    than the arithmetic."""
    tree = ast.parse(translate((function,)))
    fn = tree.body[0]
    if not (isinstance(fn, ast.FunctionDef) and len(fn.body) == 1 and isinstance(fn.body[0], ast.Return)):
        raise ValueError(f"{function} is not a single expression; call {name(function)} instead")
    values = {}
    for param, arg in zip(fn.args.args, args, strict=True):
        value = ast.parse(arg, mode="eval").body
        if not isinstance(value, (ast.Name, ast.Constant)) and not (
                isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant)):
            raise ValueError(f"inline {function}: argument {arg!r} is not an identifier or a literal")
        values[param.arg] = value

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return values.get(node.id, node)

    return "(" + ast.unparse(Substitute().visit(fn.body[0].value)) + ")"


def translate_used(code: str) -> str:
    """The translated functions that ``code`` calls (by their ``_fp_`` names), with everything they call."""
    sources = {f: translate((f,)) for f in FUNCTIONS}
    by_name = {name(f): f for f in FUNCTIONS}
    needed: set[str] = set()
    pending = [by_name[n] for n in re.findall(r"\b_fp_\w+", code) if n in by_name]
    while pending:
        f = pending.pop()
        if f not in needed:
            needed.add(f)
            pending += [by_name[n] for n in re.findall(r"\b_fp_\w+", sources[f]) if n in by_name]
    return translate(tuple(f for f in FUNCTIONS if f in needed)) if needed else ""
