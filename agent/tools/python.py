"""Run a short Python program in the sandbox the coding benchmark uses, and return what it printed."""

from __future__ import annotations

from typing import Any

from agent.sandbox import SandboxLimits, run_python
from agent.tools.base import Tool, ToolContext, ToolError, object_schema

MAX_CODE_CHARS = 20_000
RESULT_CHARS = 2000


def make_python_tool(limits: SandboxLimits = SandboxLimits()) -> Tool:
    def run(arguments: dict[str, Any], _: ToolContext) -> str:
        result = run_python(arguments["code"], limits=limits)
        if result.status == "ok":
            return result.stdout.strip()[-RESULT_CHARS:] or "(the program printed nothing)"
        last_error_line = (result.stderr.strip().splitlines() or [""])[-1][:300]
        detail = "; ".join(part for part in (result.reason, last_error_line) if part)
        raise ToolError(f"the program ended with {result.status}" + (f" ({detail})" if detail else ""))

    return Tool(
        name="run_python",
        description="Run a short Python 3 program (no network, no files outside a temp dir) and return its output. "
                    "Print the result.",
        parameters=object_schema({"code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE_CHARS}}, ["code"]),
        run=run,
    )
