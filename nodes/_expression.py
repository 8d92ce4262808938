"""The Math node's arithmetic: Python's own expression grammar, parsed with ``ast`` and evaluated from a whitelist.

Why not ``eval``: a workflow is a file anyone can send, and ``eval`` (even with empty builtins) reaches the
interpreter through attributes (``().__class__...``). Here nothing runs that the whitelist does not name:
numbers, the names a b c pi e, ``+ - * / // % **``, unary minus and plus, comparisons, and the functions
min max abs round floor ceil sqrt. The whole tree is checked before any of it is evaluated, so a refused
part is reported even where evaluation would never have reached it.

Why the bounds: Python's integers have no size limit, so ``9**9**9`` would run for minutes and fill the
memory. Every value is kept within a float's range (about 1.8e308), and a power of two integers whose result
would leave it is refused before it is computed. The text is limited to ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from typing import Callable, Mapping

from nodegraph import NodeUserError

MAX_LENGTH = 1000
LIMIT = sys.float_info.max
MAX_ROUND_DIGITS = 400  # round(x, n): beyond this n changes nothing a float can hold

BINARY: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
UNARY: dict[type, Callable] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
COMPARE: dict[type, Callable] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
FUNCTIONS: dict[str, tuple[Callable, int, int | None]] = {  # name -> (function, fewest arguments, most)
    "min": (min, 2, None), "max": (max, 2, None), "abs": (abs, 1, 1), "round": (round, 1, 2),
    "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1), "sqrt": (math.sqrt, 1, 1),
}
CONSTANTS = {"pi": math.pi, "e": math.e}
STRUCTURE = {ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call}
ALLOWED = STRUCTURE | set(BINARY) | set(UNARY) | set(COMPARE)
GRAMMAR = "numbers, a b c, pi e, + - * / // % **, comparisons (< <= > >= == !=) and " + " ".join(FUNCTIONS)
TOO_LARGE = "Math keeps every number within about ±1.8e308 (a float's range)"

WORDS = {  # how a refused node kind is named to the user
    ast.Attribute: "attribute access", ast.Subscript: "indexing ([...])", ast.Lambda: "a lambda",
    ast.List: "a list", ast.Tuple: "a tuple (or a comma)", ast.Dict: "a dict", ast.Set: "a set",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator", ast.BoolOp: "'and' / 'or'", ast.IfExp: "'... if ... else ...'",
    ast.NamedExpr: "':='", ast.JoinedStr: "an f-string", ast.Starred: "unpacking (*)",
    ast.keyword: "a keyword argument", ast.Await: "'await'", ast.Yield: "'yield'", ast.YieldFrom: "'yield'",
    ast.Slice: "slicing",
    ast.LShift: "the operator <<", ast.RShift: "the operator >>", ast.BitOr: "the operator |",
    ast.BitXor: "the operator ^ (a power is written **)", ast.BitAnd: "the operator &",
    ast.MatMult: "the operator @", ast.Invert: "the operator ~", ast.Not: "'not'", ast.In: "'in'",
    ast.NotIn: "'not in'", ast.Is: "'is'", ast.IsNot: "'is not'",
}


def evaluate(expression: str, names: Mapping[str, float]) -> int | float:
    """The value of ``expression`` with ``names`` (a, b, c) bound, or a NodeUserError saying what is wrong."""
    text = expression.strip()
    if not text:
        raise NodeUserError("the expression is empty; write one such as 'a + b'")
    if len(text) > MAX_LENGTH:
        raise NodeUserError(f"the expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise NodeUserError(f"{_quote(text)} is not an expression Math can read: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise NodeUserError("the expression is nested too deeply") from None
    check(tree, text, names)
    try:
        return _Evaluator(text, names).value(tree.body)
    except RecursionError:
        raise NodeUserError("the expression is nested too deeply") from None


def check(tree: ast.AST, text: str, names: Mapping[str, float]) -> None:
    """Refuse the first node of ``tree`` that is not on the whitelist, naming it."""
    callees = set()
    for node in ast.walk(tree):
        if type(node) not in ALLOWED:
            raise NodeUserError(f"{_describe(node)} is not allowed in a Math expression; it may use {GRAMMAR}")
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            raise NodeUserError(f"{_segment(text, node)} is not a number; a Math expression may use {GRAMMAR}")
        if isinstance(node, ast.Call):
            _check_call(node, text)
            callees.add(id(node.func))
        if isinstance(node, ast.Name) and id(node) not in callees and node.id not in {*names, *CONSTANTS}:
            hint = f"{node.id} is a function: call it as {node.id}(...)" if node.id in FUNCTIONS else \
                f"the names are {', '.join([*names, *CONSTANTS])}"
            raise NodeUserError(f"unknown name {node.id!r} in the expression; {hint}")


def _check_call(node: ast.Call, text: str) -> None:
    if not isinstance(node.func, ast.Name):
        raise NodeUserError(f"{_describe(node.func)} is not allowed in a Math expression; it may use {GRAMMAR}")
    name = node.func.id
    if name not in FUNCTIONS:
        raise NodeUserError(f"calling {name} is not allowed in a Math expression; the functions are "
                            f"{', '.join(FUNCTIONS)}")
    _, fewest, most = FUNCTIONS[name]
    count = len(node.args)
    if count < fewest or (most is not None and count > most):
        wanted = f"at least {fewest}" if most is None else str(fewest) if fewest == most else f"{fewest} or {most}"
        raise NodeUserError(f"{name} takes {wanted} number{'s' if wanted != '1' else ''}, "
                            f"got {count} in {_segment(text, node)}")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"attribute access (.{node.attr})"
    return WORDS.get(type(node), f"{type(node).__name__!r}")


def _segment(text: str, node: ast.AST) -> str:
    """The part of the expression a node stands for, quoted, to say where a problem lies."""
    return _quote(ast.get_source_segment(text, node) or text)


def _quote(text: str, most: int = 60) -> str:
    return repr(text if len(text) <= most else text[: most - 3] + "...")


class _Evaluator:
    """Evaluates a checked tree; every intermediate value goes through :meth:`bounded`."""

    def __init__(self, text: str, names: Mapping[str, float]):
        self.text = text
        self.names = {**CONSTANTS, **names}

    def value(self, node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant):
            return self.bounded(node.value, node)
        if isinstance(node, ast.Name):
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp):
            return self.apply(UNARY[type(node.op)], [self.value(node.operand)], node)
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(node.op, ast.Pow):
                self.check_power(left, right, node)
            return self.apply(BINARY[type(node.op)], [left, right], node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        return self.call(node)

    def compare(self, node: ast.Compare) -> bool:
        """A chain ``x < y <= z`` as Python reads it: pairwise, stopping at the first false one."""
        left = self.value(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.value(comparator)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def call(self, node: ast.Call) -> int | float:
        name = node.func.id
        args = [self.value(arg) for arg in node.args]
        if name == "round" and len(args) == 2 and not (
                isinstance(args[1], int) and abs(args[1]) <= MAX_ROUND_DIGITS):
            raise NodeUserError(f"round's digits must be a whole number from -{MAX_ROUND_DIGITS} to "
                                f"{MAX_ROUND_DIGITS}, in {_segment(self.text, node)}")
        return self.apply(FUNCTIONS[name][0], args, node)

    def check_power(self, base, exponent, node) -> None:
        """Refuse an integer power too large for a float before Python spends minutes computing it."""
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            if exponent * math.log2(abs(base)) > 1025:
                raise NodeUserError(f"{_segment(self.text, node)} is too large: {TOO_LARGE}")

    def apply(self, fn: Callable, args: list, node: ast.AST) -> int | float:
        where = _segment(self.text, node)
        try:
            result = fn(*args)
        except ZeroDivisionError:
            raise NodeUserError(f"division by zero in {where}") from None
        except OverflowError:
            raise NodeUserError(f"{where} is too large: {TOO_LARGE}") from None
        except (ValueError, TypeError):  # sqrt of a negative number, floor of ...
            raise NodeUserError(f"{where} has no real result") from None
        return self.bounded(result, node)

    def bounded(self, value, node: ast.AST) -> int | float:
        where = _segment(self.text, node)
        if isinstance(value, complex):
            raise NodeUserError(f"{where} has no real result (a negative number to a fractional power)")
        if value != value:  # NaN
            raise NodeUserError(f"{where} is not a number")
        if abs(value) > LIMIT:
            raise NodeUserError(f"{where} is too large: {TOO_LARGE}")
        return value
