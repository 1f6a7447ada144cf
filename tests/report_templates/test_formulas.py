"""The formula language alone: what it computes (Decimal, empty on division by zero), and that nothing reaching
outside it compiles (known escapes, and hypothesis throwing the dangerous parts of Python at it)."""

from __future__ import annotations

import ast
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.report_templates.formulas import FUNCTIONS, MAX_DEPTH, FormulaError, compile_formula

# Each one an attempt to reach outside arithmetic on rows and columns.
ESCAPES = [
    "amount.__class__",
    "amount.real",
    "amount.__class__.__mro__[1].__subclasses__()",
    "__import__('os').system('id')",
    "__builtins__",
    "_amount",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('1')",
    "getattr(amount, '__class__')",
    "globals()",
    "type(amount)",
    "(lambda: 1)()",
    "lambda x: x",
    "[x for x in (1, 2)]",
    "{x: 1 for x in (1,)}",
    "(x for x in (1,))",
    "amount if amount else 1",
    "amount[0]",
    "'a' * 10",
    "f'{amount}'",
    "b'x'",
    "9**9**9",
    "2 ** 1000",
    "amount ** amount",
    "2 ** 0.5",
    "1e308 * 10",
    "0x7fffffff",
    "10_000_000_000_000_000_000",
    "True + 1",
    "None",
    "amount == 1",
    "amount and 1",
    "not amount",
    "~amount",
    "amount << 2",
    "amount // 2",
    "amount % 2",
    "abs(amount, key=1)",
    "max(*amount)",
    "abs",
    "round(amount, amount)",
    "round(amount, 99)",
    "amount := 1",
    "import os",
    "amount; 1",
    "amount\n1",
    "amount \\\n + 1",
    "(" * 60 + "amount" + ")" * 60,
    "-" * 100 + "amount",
    "+".join(["amount"] * 80),
    "amount" + " + 1" * 100,
    "",
    "   ",
    "amount\x00",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_every_known_escape_is_refused(text: str) -> None:
    with pytest.raises(FormulaError):
        compile_formula(text, {"amount", "amount_prior"})


def test_arithmetic_is_decimal_and_empty_where_undefined() -> None:
    change = compile_formula("(amount - amount_prior) / abs(amount_prior) * 100")
    assert change.evaluate({"amount": Decimal("150.10"), "amount_prior": Decimal("100.00")}) == Decimal("50.1")
    assert change.evaluate({"amount": Decimal("1"), "amount_prior": Decimal("0")}) is None  # division by zero
    assert change.evaluate({"amount": None, "amount_prior": Decimal("1")}) is None  # a missing value
    assert compile_formula("0.1 + 0.2").evaluate({}) == Decimal("0.3")  # never binary floats
    assert compile_formula("round(a / 3, 2)").evaluate({"a": Decimal(10)}) == Decimal("3.33")
    assert compile_formula("round(a / 8, 2)").evaluate({"a": Decimal(1)}) == Decimal("0.13")  # half up
    assert compile_formula("max(a, b, 0) - min(a, b)").evaluate({"a": Decimal(-2), "b": Decimal(5)}) == Decimal(7)
    assert compile_formula("a ** -2").evaluate({"a": Decimal(0)}) is None
    assert compile_formula("+".join(["a"] * (MAX_DEPTH - 1))).evaluate({"a": Decimal(1)}) == MAX_DEPTH - 1


def test_a_calculated_column_may_read_only_the_columns_it_names() -> None:
    with pytest.raises(FormulaError, match="unknown name 'cost'"):
        compile_formula("amount - cost", {"amount"})
    assert compile_formula("amount - cost").names == {"amount", "cost"}  # rows: any name, resolved at run time


ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load, ast.Add,
                 ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)  # fmt: skip
PIECES = st.sampled_from(
    [
        "amount",
        "cost",
        "1",
        "2.5",
        "9",
        "+",
        "-",
        "*",
        "/",
        "**",
        "(",
        ")",
        ",",
        ".",
        "__class__",
        "__",
        "[",
        "]",
        "'",
        '"',
        "lambda",
        ":",
        "for",
        "in",
        "if",
        "else",
        "import",
        "os",
        "abs",
        "min",
        "max",
        "round",
        "eval",
        "getattr",
        "__import__",
        "_",
        "=",
        "==",
        "<",
        "@",
        "%",
        "//",
        "~",
        "not",
        "and",
        " ",
        "\\",
        "\n",
        "{",
        "}",
        "True",
        "None",
        "0x1",
        "1e9",
        "9" * 30,
        "yield",
        "await",
        "global",
    ]  # fmt: skip
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, min_size=1, max_size=40).map("".join) | st.text(max_size=120))
def test_whatever_compiles_is_plain_arithmetic_and_evaluates(text: str) -> None:
    """Random text of Python's dangerous parts: refused, or only arithmetic nodes, and evaluating to a Decimal or
    None without raising."""
    try:
        formula = compile_formula(text)
    except FormulaError:
        return
    for node in ast.walk(formula.tree):
        assert isinstance(node, ALLOWED_NODES), (text, type(node).__name__)
        if isinstance(node, ast.Name):
            assert not node.id.startswith("_")
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
    value = formula.evaluate({name: Decimal(7) for name in formula.names})
    assert value is None or isinstance(value, Decimal)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.sampled_from(["a", "b", "3", "0"]),
                    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**2"]), inner).map(
                        lambda t: f"({t[0]} {t[1]} {t[2]})" if t[1] != "**2" else f"({t[0]})**2"),
                    max_leaves=20))  # fmt: skip
def test_well_formed_arithmetic_never_raises(text: str) -> None:
    try:
        formula = compile_formula(text)
    except FormulaError:  # too long or too deep: refused with a message, not an error
        return
    value = formula.evaluate({"a": Decimal("1.5"), "b": Decimal(0)})
    assert value is None or isinstance(value, Decimal)
