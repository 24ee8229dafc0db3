"""Run a completion against its task's hidden tests in the sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from agent.sandbox import SandboxLimits, run_python
from benchmarks.coding.datasets import Task

STDERR_CHARS = 2000


@dataclass(frozen=True)
class Execution:
    result: str  # "passed" | "failed" (an assertion) | "error" | "timeout" | "memory" | "killed"
    stderr: str
    duration_s: float
    peak_memory_mb: float
    isolation: str


def execute(task: Task, completion: str, limits: SandboxLimits) -> Execution:
    outcome = run_python(task.program(completion), limits=limits)
    if outcome.status == "ok":
        result = "passed"
    elif outcome.status == "error":
        last_line = (outcome.stderr.strip().splitlines() or [""])[-1]
        result = "failed" if last_line.startswith("AssertionError") else "error"
    else:
        result = outcome.status
    stderr = outcome.stderr[-STDERR_CHARS:]
    if outcome.status not in ("ok", "error"):
        stderr = f"{stderr}\n[sandbox] {outcome.reason}".lstrip()
    return Execution(result, stderr, outcome.duration_s, outcome.peak_memory_mb, outcome.isolation)
