"""What the model is asked, and how the code is taken out of what it answers."""

from __future__ import annotations

import ast
import re

from benchmarks.coding.datasets import Task

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Answer with one ```python code block that contains the complete "
    "function, with the imports it needs. No explanations, no tests, no example usage."
)
AGENT_SYSTEM_PROMPT = SYSTEM_PROMPT + (
    " Your code is then run on the task's examples and you are told the results; when an example fails, "
    "answer with the complete corrected function."
)
FEEDBACK_CHARS = 1500

# ```python ... ``` (or ```py, or a bare ```); an unclosed fence runs to the end (the answer was cut off).
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(def |async def |class |import |from \S+ import |@)")
_KEPT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def task_message(task: Task) -> str:
    if task.code_prefix:
        return f"Complete this Python function:\n```python\n{task.prompt.rstrip()}\n```"
    return f"{task.prompt.strip()}\nWrite the Python function `{task.entry_point}`."


def feedback_message(report: str) -> str:
    return (f"I ran your code on the examples:\n{report[-FEEDBACK_CHARS:]}\n"
            "Fix the function and answer with the complete corrected code in one ```python block.")


def extract_code(answer: str, entry_point: str, continues_prompt: bool) -> str:
    """The solution in a model's answer, ready to follow the task's code prefix.

    Takes the fenced block that defines `entry_point` (else the longest block, else the bare code),
    then keeps only imports, functions, classes and simple constants, so example calls, prints and
    `if __name__ == "__main__":` blocks do not run with the tests. A bare function body (no `def`)
    is indented to continue the prompt when the task is a completion.
    """
    blocks = [body for language, body in _FENCE.findall(answer) if language.lower() in ("", "python", "py", "python3")]
    if not blocks:
        blocks = [_bare_code(answer)]
    defines = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    code = next((block for block in blocks if defines.search(block)), max(blocks, key=len))
    if defines.search(code):
        return _definitions_only(code, entry_point)
    if continues_prompt and code.strip() and not code[:1].isspace():
        return "\n".join(f"    {line}" if line.strip() else line for line in code.splitlines()) + "\n"
    return code if code.endswith("\n") else code + "\n"


def _bare_code(answer: str) -> str:
    """From the first line that looks like code to the last line that still parses."""
    lines = answer.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return answer
    lines = lines[start:]
    for end in range(len(lines), 0, -1):
        if _parses("\n".join(lines[:end])):
            return "\n".join(lines[:end]) + "\n"
    return "\n".join(lines) + "\n"


def _definitions_only(code: str, entry_point: str) -> str:
    lines = code.splitlines()
    tree = None
    for end in range(len(lines), 0, -1):  # a cut-off answer: drop lines from the end until it parses
        try:
            tree = ast.parse("\n".join(lines[:end]))
            break
        except SyntaxError:
            continue
    if tree is None or not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point
                               for node in tree.body):
        return code if code.endswith("\n") else code + "\n"  # let the tests report the syntax error
    kept = []
    for node in tree.body:
        if isinstance(node, _KEPT_NODES) or (isinstance(node, (ast.Assign, ast.AnnAssign)) and not _calls(node)):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n\n".join(kept) + "\n"


def _calls(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Call) for child in ast.walk(node))


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True
