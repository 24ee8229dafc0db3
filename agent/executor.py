"""Running tool calls for one request: within its budget, in the right pool, each one recorded in the trace."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from agent.plan import Plan, Step, resolve_references
from agent.tools.base import ChangeDeferred, ConfirmationNeeded, Tool, ToolContext, ToolError
from common.types import ToolCallRecord, Trace

QUICK_TOOL_THREADS = 8


@dataclass(frozen=True)
class AgentLimits:
    max_iterations: int = 2
    max_tool_calls: int = 6
    max_seconds: float = 30.0


class Budget:
    def __init__(self, limits: AgentLimits, clock: Callable[[], float]):
        self.limits, self.clock = limits, clock
        self.deadline = clock() + limits.max_seconds
        self.tool_calls = 0

    def seconds_left(self) -> float:
        return self.deadline - self.clock()

    def exhausted(self) -> str | None:
        if self.tool_calls >= self.limits.max_tool_calls:
            return f"the limit of {self.limits.max_tool_calls} tool calls was reached"
        if self.seconds_left() <= 0:
            return f"the time limit of {self.limits.max_seconds:g} s was reached"
        return None


Results = dict[str, tuple[Step, str]]  # "<round>.<step id>" -> the step as run and its result


class ToolExecutor:
    def __init__(self, code_runs: int, clock: Callable[[], float]):
        self.clock = clock
        # Programs get a pool of their own: a slow one never holds up another user's calculator.
        self._code_pool = ThreadPoolExecutor(code_runs, thread_name_prefix="june-code")
        self._tool_pool = ThreadPoolExecutor(QUICK_TOOL_THREADS, thread_name_prefix="june-tool")

    async def run(self, step: Step, arguments: dict[str, Any], tool: Tool, context: ToolContext, budget: Budget,
                  trace: Trace) -> tuple[str, str]:
        """Run one tool within the budget: ("ok" | "error", result). ConfirmationNeeded passes through (it is the
        turn's answer); a tool that changes something, asked for by a preemptive request, is not run: ChangeDeferred."""
        if tool.changes_state and context.preemptive:
            raise ChangeDeferred(tool.name)
        budget.tool_calls += 1
        started = self.clock()
        context = replace(context, cancelled=threading.Event())  # this call's own: its thread outlives the await
        try:
            tool.validate(arguments)
            pool = self._code_pool if tool.runs_code else self._tool_pool
            run = asyncio.get_running_loop().run_in_executor(pool, tool.run, arguments, context)
            result = await asyncio.wait_for(run, budget.seconds_left())
            status = "ok"
        except asyncio.CancelledError:  # the request is gone: a program still running is stopped
            context.cancelled.set()
            raise
        except ConfirmationNeeded as question:
            record(trace, step, arguments, "needs-confirmation", question.question, (self.clock() - started) * 1000)
            raise
        except ToolError as error:
            status, result = "error", str(error)
        except asyncio.TimeoutError:
            context.cancelled.set()
            status, result = "error", "the tool did not finish within the time limit"
        except Exception as error:  # a tool bug must not take the request down
            status, result = "error", f"the tool failed ({type(error).__name__})"
        record(trace, step, arguments, status, result, (self.clock() - started) * 1000)
        return status, result

    async def execute(self, plan: Plan, tools: dict[str, Tool], context: ToolContext, budget: Budget,
                      trace: Trace, results: Results) -> list[str]:
        """Run a plan's steps in dependency order, adding what succeeded to `results`; return what failed. A step
        whose dependency failed is skipped."""
        status: dict[str, str] = {}
        ok_results = {step_id.split(".", 1)[1]: result for step_id, (_, result) in results.items()}
        pending = list(plan.steps)
        while pending:
            step = next(s for s in pending if all(d in status for d in s.depends_on))
            pending.remove(step)
            failed = [d for d in step.depends_on if status[d] != "ok"]
            if failed:
                record(trace, step, step.arguments, "skipped", f"skipped: step {failed[0]} did not succeed", 0)
                status[step.id] = "skipped"
                continue
            if limit := budget.exhausted():
                record(trace, step, step.arguments, "skipped", f"skipped: {limit}", 0)
                trace.not_done.append(f"{step.tool} was not run because {limit}")
                status[step.id] = "skipped"
                continue
            arguments = resolve_references(step.arguments, ok_results)
            status[step.id], result = await self.run(step, arguments, tools[step.tool], context, budget, trace)
            if status[step.id] == "ok":
                ok_results[step.id] = result
                results[f"{trace.iterations}.{step.id}"] = (Step(step.id, step.tool, arguments), result)
        return [f"{r.step} ({r.tool}): {r.result}" for r in trace.tool_calls[-len(plan.steps):] if r.status != "ok"]


def record(trace: Trace, step: Step, arguments: dict[str, Any], status: str, result: str, ms: float) -> None:
    trace.tool_calls.append(ToolCallRecord(step.id, step.tool, arguments, status, result, round(ms, 1)))
