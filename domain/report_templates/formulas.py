"""The formula language of calculated rows and columns: arithmetic over other rows or columns, nothing else.

    margin = revenue - cost            change = (amount - amount_prior) / abs(amount_prior) * 100

What a formula may hold: decimal numbers (`12`, `0.5`), names of other rows or columns, `+ - * /`, `**` with a whole
literal exponent from -6 to 6, parentheses, and the functions abs(x), min(a, b, ...), max(a, b, ...) and
round(x[, places]). Nothing else parses: no attribute access, no subscripts, no strings, no comparisons, no
lambdas, comprehensions or keywords; names starting with `_` are refused. A formula is at most 300 characters and
its parentheses at most 12 deep and its tree at most 40 levels (each term of a chain `a + b + c` is a level).

Two layers, so a formula that slipped past one is stopped by the other:
- `compile_formula` checks it when the template is saved: Python's own parser (`ast`) reads it, and every node is
  checked against the short list above (an allow-list: a node type not named is refused). A refusal is a
  `FormulaError` naming what is wrong, which the template's validation turns into a 422 naming the field.
- `Formula.evaluate` runs it with simpleeval (a maintained sandboxed evaluator) restricted to the same nodes, our
  operators and our four functions, with the row's or column's values as the only names.

Arithmetic is `Decimal` (money never float): the literals are read from their text, a missing value (None) makes the
result None, and so does a division by zero or an overflow: an empty cell, never an error.
"""

from __future__ import annotations

import ast
import decimal
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simpleeval import FeatureNotAvailable, InvalidExpression, SimpleEval

MAX_LENGTH = 300
MAX_DEPTH = 40  # a chain a + b + c ... is one level per term: room for the rows of a statement
MAX_PARENTHESES = 12
MAX_EXPONENT = 6
MAX_ARGUMENTS = 10
MAX_PLACES = 6
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_NUMBER = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,10})?$")
# The precision of formula arithmetic: far beyond NUMERIC(19, 4) sums, small enough that nothing grows unbounded.
_CONTEXT = decimal.Context(
    prec=34, Emax=10**6, Emin=-(10**6), traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero]
)

Value = Decimal | None


class FormulaError(ValueError):
    """A formula that is not in the language (its message says why, for the 422)."""


# --- the functions and operators: None in, None out; division by zero and overflow give None --------------------


def _none_aware(operation: Callable[..., Decimal]) -> Callable[..., Value]:
    def apply(*values: Value) -> Value:
        if any(value is None for value in values):
            return None
        try:
            with decimal.localcontext(_CONTEXT):
                result = operation(*values)
            return result if result.is_finite() else None
        except (decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero, ZeroDivisionError):
            return None

    return apply


def _divide(left: Decimal, right: Decimal) -> Decimal:
    if right == 0:
        raise ZeroDivisionError
    return left / right


def _power(base: Decimal, exponent: Decimal) -> Decimal:
    # Checked when compiled; checked again here, as the evaluator is the last line.
    if exponent != exponent.to_integral_value() or abs(exponent) > MAX_EXPONENT:
        raise decimal.InvalidOperation
    return base ** int(exponent)


def _round(value: Decimal, places: Decimal = Decimal(0)) -> Decimal:
    if places != places.to_integral_value() or not 0 <= places <= MAX_PLACES:
        raise decimal.InvalidOperation
    return value.quantize(Decimal(1).scaleb(-int(places)), rounding=decimal.ROUND_HALF_UP)


OPERATORS: dict[type[ast.AST], Callable[..., Value]] = {
    ast.Add: _none_aware(lambda a, b: a + b),
    ast.Sub: _none_aware(lambda a, b: a - b),
    ast.Mult: _none_aware(lambda a, b: a * b),
    ast.Div: _none_aware(_divide),
    ast.Pow: _none_aware(_power),
    ast.USub: _none_aware(lambda a: -a),
    ast.UAdd: _none_aware(lambda a: +a),
}
FUNCTIONS: dict[str, Callable[..., Value]] = {
    "abs": _none_aware(abs),
    "min": _none_aware(min),
    "max": _none_aware(max),
    "round": _none_aware(_round),
}
_ARITY = {"abs": (1, 1), "min": (2, MAX_ARGUMENTS), "max": (2, MAX_ARGUMENTS), "round": (1, 2)}
_OPERATOR_NODES = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Load)
_SYMBOLS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
            ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.Invert: "~", ast.Not: "not"}  # fmt: skip


# --- compile: the allow-list, checked on save ------------------------------------------------------------------


@dataclass(frozen=True)
class Formula:
    """A formula that passed `compile_formula`: its text, its parsed tree and the names it reads."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Value]) -> Value:
        """The formula's value for these names (a name it reads and `values` lacks counts as None)."""
        evaluator = _Evaluator(self.text, {name: values.get(name) for name in self.names})
        try:
            result = evaluator.eval(self.text, previously_parsed=self.tree.body)
        except (InvalidExpression, FeatureNotAvailable) as error:  # compile_formula let through what it may not
            raise FormulaError(str(error)) from error
        if result is not None and not isinstance(result, Decimal):
            raise FormulaError("a formula must give a number")
        return result


def compile_formula(text: str, allowed_names: Collection[str] | None = None) -> Formula:
    """Check `text` against the language: a `Formula`, or a `FormulaError` saying what is refused.

    `allowed_names`: the names it may read (the columns a calculated column may use); None for any name of the
    form NAME (a calculated row reads rows named by the data, known only when the report runs)."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("a formula may not be empty")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"a formula is at most {MAX_LENGTH} characters (this one has {len(text)})")
    if "\n" in text or "\r" in text or "\\" in text:
        raise FormulaError("a formula is one line of arithmetic")
    _check_parentheses(text)
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like: the text is refused or checked below
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise FormulaError(f"not a formula: {error.msg}") from error
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, a parser stack overflow
        raise FormulaError("not a formula") from error
    names: set[str] = set()
    # Iterative walk with the depth of each node: a deep formula cannot overflow the checker's own stack.
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormulaError(f"a formula nests at most {MAX_DEPTH} levels deep")
        children = _check_node(node, text, names, allowed_names)
        stack.extend((child, depth + 1) for child in children)
    return Formula(text.strip(), tree, frozenset(names))


def _check_parentheses(text: str) -> None:
    depth = 0
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth > MAX_PARENTHESES:
            raise FormulaError(f"a formula nests parentheses at most {MAX_PARENTHESES} deep")


def _check_node(node: ast.AST, text: str, names: set[str], allowed_names: Collection[str] | None) -> list[ast.AST]:
    """Refuse a node outside the language; return the children to check."""
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            raise FormulaError(f"the operator {_SYMBOLS.get(type(node.op), type(node.op).__name__)} is not allowed")
        if isinstance(node.op, ast.Pow):
            _check_exponent(node.right)
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise FormulaError(f"the operator {_SYMBOLS.get(type(node.op), type(node.op).__name__)} is not allowed")
        return [node.operand]
    if isinstance(node, ast.Constant):
        segment = ast.get_source_segment(text.strip(), node) or ""
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)) or not _NUMBER.match(segment):
            raise FormulaError(f"{segment or repr(node.value)} is not a number a formula may hold (such as 12 or 0.5)")
        return []
    if isinstance(node, ast.Name):
        _check_name(node.id, allowed_names)
        names.add(node.id)
        return []
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = node.func.id if isinstance(node.func, ast.Name) else "this"
            raise FormulaError(f"{shown}() is not a function a formula may call (abs, min, max, round)")
        if node.keywords:
            raise FormulaError("functions take no keyword arguments")
        if any(isinstance(argument, ast.Starred) for argument in node.args):
            raise FormulaError("functions take no * arguments")
        low, high = _ARITY[node.func.id]
        if not low <= len(node.args) <= high:
            raise FormulaError(f"{node.func.id}() takes {low} to {high} arguments")
        if node.func.id == "round" and len(node.args) == 2:
            _check_places(node.args[1])
        return list(node.args)
    if isinstance(node, ast.Attribute):
        raise FormulaError("attribute access (.) is not allowed")
    if isinstance(node, ast.Subscript):
        raise FormulaError("subscripts ([...]) are not allowed")
    raise FormulaError(f"{type(node).__name__} is not allowed in a formula (only arithmetic on rows or columns)")


def _literal_int(node: ast.AST) -> int | None:
    """A whole literal, possibly negated, or None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _check_exponent(node: ast.AST) -> None:
    exponent = _literal_int(node)
    if exponent is None or abs(exponent) > MAX_EXPONENT:
        raise FormulaError(f"an exponent must be a whole number from -{MAX_EXPONENT} to {MAX_EXPONENT}")


def _check_places(node: ast.AST) -> None:
    places = _literal_int(node)
    if places is None or not 0 <= places <= MAX_PLACES:
        raise FormulaError(f"round()'s places must be a whole number from 0 to {MAX_PLACES}")


def _check_name(name: str, allowed_names: Collection[str] | None) -> None:
    if name in FUNCTIONS:
        raise FormulaError(f"{name} is a function: call it, as {name}(...)")
    if not NAME.match(name):
        raise FormulaError(f"{name!r} is not a name a formula may use (lower case letters, digits and _)")
    if allowed_names is not None and name not in allowed_names:
        known = ", ".join(sorted(allowed_names)) or "none"
        raise FormulaError(f"unknown name {name!r} (this formula may use: {known})")


# --- evaluate: simpleeval restricted to the same language ------------------------------------------------------


class _Evaluator(SimpleEval):  # type: ignore[misc]
    """simpleeval with only the nodes of the language: everything else is FeatureNotAvailable."""

    def __init__(self, text: str, names: dict[str, Value]) -> None:
        super().__init__(operators=dict(OPERATORS), functions=dict(FUNCTIONS), names=names)
        self.source = text
        allowed = (ast.Expr, ast.Name, ast.UnaryOp, ast.BinOp, ast.Call, ast.Constant)
        nodes: dict[type[ast.AST], Callable[..., Any]] = getattr(self, "nodes")  # noqa: B009 - untyped library
        kept = {node: handler for node, handler in nodes.items() if node in allowed}
        kept[ast.Constant] = self._number
        kept[ast.Call] = self._call
        self.nodes = kept

    def _number(self, node: ast.Constant) -> Decimal:
        segment = ast.get_source_segment(self.source, node) or ""
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)) or not _NUMBER.match(segment):
            raise FeatureNotAvailable("only decimal numbers")
        return Decimal(segment)

    def _call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in self.functions or node.keywords:
            raise FeatureNotAvailable("only abs, min, max and round")
        return self.functions[node.func.id](*(self._eval(argument) for argument in node.args))

    def _eval_name(self, node: ast.Name) -> Any:
        if node.id not in self.names:
            raise FeatureNotAvailable(f"unknown name {node.id}")
        return self.names[node.id]
