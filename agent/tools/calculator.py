"""Safe arithmetic: the expression is parsed to an AST and only numbers and operators are evaluated.

Every intermediate result is bounded (at most MAX_MAGNITUDE, exponents and round's digits checked
before computing), so no expression holds the interpreter for long.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any

from agent.tools.base import Recognised, Rule, Tool, ToolContext, ToolError, object_schema
from agent.tools.signals import NUMERAL, with_number, without_thousands_separators

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "sin": math.sin, "cos": math.cos, "tan": math.tan,
              "log": math.log, "log10": math.log10, "exp": math.exp, "floor": math.floor, "ceil": math.ceil}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e100
MAX_DIGITS = 100  # round's second argument, either way
MAX_LENGTH = 300
_TOO_LARGE = "the result is too large or not a real number"


def evaluate(expression: str) -> float | int:
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is longer than {MAX_LENGTH} characters")
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    text = without_thousands_separators(text)
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolError(f"{expression!r} is not an arithmetic expression") from None
    try:
        return _eval(tree.body)
    except RecursionError:
        raise ToolError("the expression is nested too deeply") from None


def _eval(node: ast.AST) -> float | int:
    return _bounded(_value(node))


def _value(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _computed(type(node.op).__name__.lower(), _BINARY[type(node.op)], left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and len(node.args) in (1, 2)):
        arguments = [_eval(a) for a in node.args]
        if node.func.id == "round" and len(arguments) == 2 and abs(arguments[1]) > MAX_DIGITS:
            raise ToolError(f"round: more than {MAX_DIGITS} digits either way are not computed")
        return _computed(node.func.id, _FUNCTIONS[node.func.id], *arguments)
    raise ToolError(f"only numbers, + - * / // % ** and {', '.join(sorted(_FUNCTIONS))} are allowed")


def _check_power(base: float | int, exponent: float | int) -> None:
    """Refuse a power before computing it when its exponent, or its result, would be too large."""
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponents above {MAX_EXPONENT} are not computed")
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE) + 1:
        raise ToolError(_TOO_LARGE)


def _computed(name: str, function: Any, *arguments: float | int) -> float | int:
    try:
        return function(*arguments)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError(_TOO_LARGE) from None
    except (ValueError, TypeError) as error:
        raise ToolError(f"{name}: {error}") from None


def _bounded(value: Any) -> float | int:
    if isinstance(value, complex) or abs(value) > MAX_MAGNITUDE or (isinstance(value, float) and math.isnan(value)):
        raise ToolError(_TOO_LARGE)
    return value


def format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}" if isinstance(value, float) else str(value)


_CLOCK_TIME = re.compile(r"(?<![\d.:])(\d{1,2}):([0-5]\d)(?:\s*([ap])\.?m\b\.?)?(?![\d:])", re.I)


def _in_minutes(time: re.Match[str]) -> str:
    hours, minutes, half = int(time[1]), int(time[2]), (time[3] or "").lower()
    if half:
        hours = hours % 12 + (12 if half == "p" else 0)
    return f"({hours} * 60 + {minutes})"


def _as_clock(minutes: float | int, time_of_day: bool) -> str:
    """Minutes as hours:minutes, then as a time of day ("22:05 (10:05 PM)") where the expression held an am or pm,
    else as a duration in words ("7:45 (7 hours 45 minutes)")."""
    sign, minutes = ("-" if minutes < 0 else ""), round(abs(minutes))
    hours, rest = divmod(minutes, 60)
    if time_of_day and not sign:
        hours %= 24
        return f"{hours}:{rest:02d} ({(hours - 1) % 12 + 1}:{rest:02d} {'PM' if hours >= 12 else 'AM'})"
    return f"{sign}{hours}:{rest:02d} ({sign}{hours} hours {rest} minutes)"


def _run(arguments: dict[str, Any], _: ToolContext) -> str:
    """Clock times ("17:15 - 9:30", "7:45 pm + 2:20") are minutes, and so is their result."""
    expression = arguments["expression"]
    minutes = _CLOCK_TIME.sub(_in_minutes, expression)
    if minutes != expression:
        return _as_clock(evaluate(minutes), any(time[3] for time in _CLOCK_TIME.finditer(expression)))
    return format_number(evaluate(expression))


_SPOKEN_OPERATORS = [
    (r"\bsquare root of\s+(" + NUMERAL + ")", r"sqrt(\1)"),
    (r"(" + NUMERAL + r")\s*(?:%|percent)\s+of\s+(" + NUMERAL + ")", r"(\1/100*\2)"),
    (r"(" + NUMERAL + r")\s+squared\b", r"(\1**2)"),
    (r"(" + NUMERAL + r")\s+cubed\b", r"(\1**3)"),
    (r"\bto the power of\b", "**"),
    (r"\bmultiplied by\b|\btimes\b|\bx\b", "*"),
    (r"\bdivided by\b|\bover\b", "/"),
    (r"\bplus\b|\badded to\b", "+"),
    (r"\bminus\b|\bless\b", "-"),
    (r"\bmodulo\b|\bmod\b", "%"),
]
_EXPRESSION = re.compile(r"(?<![-(])(?:sqrt\()?[-(]*(?<![\d.,])\d[\d.,]*(?:\s*(?:\*\*|[-+*/%^])\s*[-(]*(?:sqrt\()?\d[\d.,]*\)*)+\)*")
_FUNCTION_CALL = re.compile(r"sqrt\(\d[\d.]*\)")


def arithmetic_expression(text: str) -> str | None:
    """The arithmetic a request says ("7 times 8" is "7 * 8"), as an expression the calculator evaluates."""
    spoken = text.lower()
    for pattern, replacement in _SPOKEN_OPERATORS:
        spoken = re.sub(pattern, replacement, spoken)
    match = _EXPRESSION.search(spoken.replace("^", "**")) or _FUNCTION_CALL.search(spoken)
    return match[0].replace(",", "") if match else None


def _recognise(text: str) -> Recognised | None:
    if expression := arithmetic_expression(text):
        return Recognised(f"contains arithmetic ({expression})", ({"expression": expression},))
    return None


calculator = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression written with numbers, + - * / ** % and sqrt(); the whole "
                "calculation in one expression, with parentheses where the order matters.",
    parameters=object_schema({"expression": {"type": "string", "minLength": 1}}, ["expression"]),
    run=_run,
    signals=with_number(r"\d\s*[-+*/x×÷^%]\s*[\d(]|\b(?:plus|minus|times|multipl\w*|divid\w*|over|percent|"
                        r"add|adding|subtract\w*|take away|squared|cubed|square root|power|average|mean|sum|total|"
                        r"altogether|double|triple|twice|"
                        r"each|per|split|left|remain\w*|how (?:much|many))\b|"
                        r"\d:[0-5]\d\b"),
    rule=Rule(_recognise, "quantity", rank=30),  # the last: a conversion or a date holds numbers too
    answers_questions=True,
    say=lambda arguments, result: f"{arguments['expression'].replace('**', '^')} = {result}",
)
