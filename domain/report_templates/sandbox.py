"""What runs an admin's layout: Jinja2's immutable sandbox with its caps, then WeasyPrint fetching nothing.

The functions here run in a process of their own under a CPU and memory limit (layout.py starts it through
core.processes.run_limited): they import only Jinja2, so that process starts fast; drawing.py adds WeasyPrint.

Jinja2's `ImmutableSandboxedEnvironment` refuses attribute access outside plain data (`''.__class__`,
`cycler.__init__.__globals__`) with a SecurityError, and refuses to change the data. On top: `range()` is capped,
`*` and `**` may not build huge values, the output is capped, and WeasyPrint (drawing.py) fetches only `data:` URLs (no
file, no network: a layout cannot read the server's files or reach the network into the PDF). What the caps cannot
bound (loops within them, nested: 1,000 x 1,000 x 1,000 steps) the process's limits do.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from domain.errors import ValidationFailed

MAX_OUTPUT_CHARS = 5_000_000
MAX_RANGE = 1_000
MAX_REPEAT = 10_000  # the longest string or list `*` may build
MAX_EXPONENT = 100


class LayoutEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(autoescape=True, undefined=StrictUndefined)  # an unsafe access fails, not blanks
        self.globals = {"range": _bounded_range}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                    if len(sequence) * times > MAX_REPEAT:
                        raise SecurityError(f"a layout may not build values longer than {MAX_REPEAT}")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponents in a layout are at most {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _bounded_range(*arguments: int) -> range:
    numbers = range(*arguments)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() in a layout has at most {MAX_RANGE} items")
    return numbers


def compile_layout(layout: str) -> None:
    """A 422 when the layout is not a template at all (cheap: no rendering, so no process of its own)."""
    try:
        LayoutEnvironment().from_string(layout)
    except TemplateError as error:
        raise _invalid(error) from error


def render_layout(layout: str, context: dict[str, Any]) -> str:
    """The layout rendered on `context`; a ValidationFailed saying what went wrong when it cannot be."""
    try:
        template = LayoutEnvironment().from_string(layout)
        parts: list[str] = []
        size = 0
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"a layout renders at most {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
        return "".join(parts)
    except SecurityError as error:
        raise ValidationFailed(
            f"the PDF layout tried something the sandbox refuses: {error}", field="layout"
        ) from error
    except TemplateError as error:
        raise _invalid(error) from error
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError, MemoryError) as error:
        raise ValidationFailed(f"the PDF layout failed: {type(error).__name__}: {error}", field="layout") from error


def _invalid(error: TemplateError) -> ValidationFailed:
    line = getattr(error, "lineno", None)
    where = f" (line {line})" if line else ""
    return ValidationFailed(f"the PDF layout is not a valid template{where}: {error}", field="layout")


def try_layout(layout: str, context: dict[str, Any]) -> None:
    """Render the layout and throw the HTML away: the check on save."""
    render_layout(layout, context)
