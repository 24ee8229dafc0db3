"""Run a short Python program in the sandbox the coding benchmark uses, and return what it printed."""

from __future__ import annotations

import ast
import re
from typing import Any

from agent.sandbox import ISOLATION_ENV, SandboxLimits, SandboxResult, SandboxUnavailable, run_python
from agent.tools.base import Recognised, Rule, Tool, ToolContext, ToolError, object_schema

MAX_CODE_CHARS = 20_000
RESULT_CHARS = 2000
QUOTED_CHARS = 60
NOTHING = "(the program printed nothing)"
_CODE = re.compile(r"\b(?:run|execute|evaluate)\b.*?```(?:python|py)?[ \t]*\n(.*?)```", re.I | re.S)
WEAKER = f"[ran with resource limits only ({ISOLATION_ENV}=rlimits): not isolated from June's files]"


def make_python_tool(limits: SandboxLimits = SandboxLimits()) -> Tool:
    def run(arguments: dict[str, Any], context: ToolContext) -> str:
        try:
            result = run_python(showing_last_value(arguments["code"]), limits=limits, cancelled=context.cancelled)
        except SandboxUnavailable as error:
            raise ToolError(str(error)) from None
        if result.status == "ok":
            return _named(result, result.stdout.strip()[-RESULT_CHARS:] or NOTHING)
        last_error_line = (result.stderr.strip().splitlines() or [""])[-1][:300]
        detail = "; ".join(part for part in (result.reason, last_error_line) if part)
        raise ToolError(_named(result, f"the program ended with {result.status}" + (f" ({detail})" if detail else "")))

    return Tool(
        name="run_python",
        description="Run a short Python 3 program (no network, no files outside a temp dir) and return its output. "
                    "Print the result.",
        parameters=object_schema({"code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE_CHARS}}, ["code"]),
        run=run,
        signals=re.compile(r"\bpython\b|\b(?:run|execute|write)\b.{0,40}\b(?:code|program|script)\b|"
                           r"\bcode (?:up|that|which)\b|```", re.I),
        rule=Rule(_recognise, "command", rank=10),  # the first: a program's text may read as any other request
        quote=one_line_output,
        say=lambda arguments, result: "The program printed nothing." if result == NOTHING else
        f"The program printed: {result}",
    )


def one_line_output(result: str) -> str | None:
    """What a program printed when it is one short line of words ("enohporcim"): the answer must hold it as it
    stands. Numbers are checked as numbers (`agent.grounding`), longer output is the model's to summarise."""
    output = result.removesuffix(f"\n{WEAKER}").strip().strip("'\"")
    if not output or "\n" in output or len(output) > QUOTED_CHARS or re.search(r"\d", output) or output == NOTHING:
        return None
    return output


def _recognise(text: str) -> Recognised | None:
    """"Run this: ```…```": a program given whole, in a code block, and asked to be run."""
    if match := _CODE.search(text):
        return Recognised("asks to run a Python program", ({"code": match[1]},))
    return None


def showing_last_value(code: str) -> str:
    """The program, printing the value of its last statement when that is an expression other than None, as a
    Python prompt shows it: small models write `sum(range(1, 101))` and forget to print it."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the sandbox reports the error as Python words it
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return code
    value = ast.Name("_june_value", ast.Load())
    tree.body[-1:] = [ast.Assign([ast.Name("_june_value", ast.Store())], last.value),
                      ast.If(ast.Compare(value, [ast.IsNot()], [ast.Constant(None)]),
                             [ast.Expr(ast.Call(ast.Name("print", ast.Load()), [ast.Call(
                                 ast.Name("repr", ast.Load()), [value], [])], []))], [])]
    return ast.unparse(ast.fix_missing_locations(tree))


def _named(result: SandboxResult, text: str) -> str:
    """The text, with a note when the operator chose the weaker isolation."""
    return f"{text}\n{WEAKER}" if result.isolation == "rlimits" else text
