"""The agent: think → plan → execute → reflect → answer, within limits, with a trace of every step."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from agent.cache import TtlLruCache
from agent.model import ChatModel, Completion
from agent.plan import InvalidPlan, Plan, Step, parse_plan, resolve_references
from agent.router import Route, RouteContext, decide
from agent.speech import for_speech
from agent.toolcalls import MalformedJson, parse_arguments
from agent.tools.base import Tool, ToolContext, ToolError
from agent.trace import ToolCallRecord, Trace

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MAX_CHECKED_NUMBERS = 6
PLANNING_PROMPT = """You plan tool calls for a voice assistant. Tools:
{tools}
Reply with JSON only, no prose: {{"thoughts": "<what is asked and what is missing>", "steps": [{{"id": "s1", \
"tool": "<tool name>", "arguments": {{...}}, "depends_on": []}}]}}. A later step may use an earlier result by \
writing {{{{s1}}}} in its arguments."""
ANSWER_PROMPT = """Answer the user's request in one or two short sentences using these tool results:
{results}"""


@dataclass(frozen=True)
class AgentLimits:
    max_iterations: int = 2
    max_tool_calls: int = 6
    max_seconds: float = 30.0


@dataclass(frozen=True)
class AgentReply:
    text: str
    speech: str
    trace: Trace


class _Budget:
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


class Agent:
    def __init__(
        self,
        model: ChatModel,
        tools: list[Tool],
        *,
        system_prompt: str,
        limits: AgentLimits = AgentLimits(),
        planner: Literal["hybrid", "model"] = "hybrid",
        plan_cache: TtlLruCache[Plan] | None = None,
        max_tokens: int = 160,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.model, self.tools = model, {tool.name: tool for tool in tools}
        self.system_prompt, self.limits, self.planner = system_prompt, limits, planner
        self.plan_cache = plan_cache if plan_cache is not None else TtlLruCache()
        self.max_tokens, self.clock = max_tokens, clock

    def route(self, request: str, history: list[dict[str, str]]) -> Route:
        return decide(request, RouteContext(frozenset(self.tools), len(history)))

    async def respond(self, request: str, context: ToolContext, history: list[dict[str, str]]) -> AgentReply:
        started = self.clock()
        trace = Trace()
        route = self.route(request, history)
        trace.route, trace.route_reasons = route.kind, list(route.reasons)
        if route.kind == "fast":
            text = await self._complete_text(self._conversation(history, request), trace)
        else:
            text = await self._solve(request, route, context, history, trace)
        trace.duration_ms = round((self.clock() - started) * 1000, 1)
        return AgentReply(text, for_speech(text), trace)

    async def stream(self, request: str, context: ToolContext, history: list[dict[str, str]]) -> AsyncIterator[str]:
        """Text deltas: streamed from the model on the fast path, the whole answer at once otherwise."""
        route = self.route(request, history)
        if route.kind == "fast":
            async for delta in self.model.stream(self._conversation(history, request), max_tokens=self.max_tokens):
                yield delta
        else:
            yield (await self.respond(request, context, history)).text

    def _conversation(self, history: list[dict[str, str]], request: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system_prompt}, *history, {"role": "user", "content": request}]

    async def _complete_text(self, messages: list[dict[str, Any]], trace: Trace) -> str:
        trace.llm_calls += 1
        return (await self.model.complete(messages, max_tokens=self.max_tokens)).text.strip()

    async def _solve(
        self, request: str, route: Route, context: ToolContext, history: list[dict[str, str]], trace: Trace
    ) -> str:
        budget = _Budget(self.limits, self.clock)
        trace.thoughts.append(f"The request {route.reasons[0]}; the answer needs a tool's result.")
        results: dict[str, tuple[Step, str]] = {}
        feedback: str | None = None
        while trace.iterations < self.limits.max_iterations:
            plan = await self._plan(request, route, context, trace, feedback)
            if plan is None:
                break
            trace.iterations += 1
            trace.plans.append({"source": plan.source, "thoughts": list(plan.thoughts),
                                "steps": [asdict(step) for step in plan.steps]})
            trace.thoughts.extend(plan.thoughts)
            failures = await self._execute(plan, context, trace, results, budget)
            feedback = "; ".join(failures) if failures else None
            if not feedback:
                trace.reflections.append("every step succeeded")
                break
            limit = budget.exhausted()
            if limit or trace.iterations >= self.limits.max_iterations:
                trace.reflections.append(f"steps failed ({feedback}); no budget left to try again")
                trace.not_done.append(limit or f"the limit of {self.limits.max_iterations} planning rounds was reached")
                break
            trace.reflections.append(f"steps failed ({feedback}); planning again with the errors shown")
        if not results:
            trace.verdict = "plain-answer"
            trace.not_done.append("no tool produced a result, so this answer comes from the model alone")
            return await self._complete_text(self._conversation(history, request), trace)
        trace.verdict = "answered" if not trace.not_done else "partial"
        answer = await self._compose(request, results, history, trace)
        if trace.not_done:
            answer += " I could not finish everything: " + "; ".join(trace.not_done) + "."
        return answer

    async def _plan(
        self, request: str, route: Route, context: ToolContext, trace: Trace, feedback: str | None
    ) -> Plan | None:
        if feedback is None and self.planner == "hybrid" and route.intent is not None:
            return Plan(route.intent.steps, "rules", (f"Recognised: {route.intent.reason}.",))
        key = (context.user_id, context.conversation_id, " ".join(request.lower().split()), feedback)
        cached = self.plan_cache.get(key)
        trace.cache = "hit" if cached else "miss"
        if cached:
            return cached
        tool_list = "\n".join(f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters['properties'])}"
                              for t in self.tools.values())
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": PLANNING_PROMPT.format(tools=tool_list)},
            {"role": "user", "content": request + (f"\nThe last attempt failed: {feedback}" if feedback else "")},
        ]
        schemas = [tool.openai_schema() for tool in self.tools.values()]
        plan = None
        for source in ("model", "model-retry"):
            trace.llm_calls += 1
            completion = await self.model.complete(messages, tools=schemas, max_tokens=256)
            try:
                plan = self._plan_from(completion, source)
                break
            except InvalidPlan as error:
                trace.reflections.append(f"the {source} plan was invalid: {error}")
                messages += [{"role": "assistant", "content": completion.text},
                             {"role": "user", "content": f"That plan is invalid: {error}. Reply with corrected "
                                                         "JSON only."}]
        if plan is not None:
            self.plan_cache.put(key, plan)
        return plan

    def _plan_from(self, completion: Completion, source: str) -> Plan:
        if not completion.tool_calls:
            return parse_plan(completion.text, self.tools, source)
        steps = []
        for index, call in enumerate(completion.tool_calls, 1):
            if call.name not in self.tools:
                raise InvalidPlan(f"unknown tool {call.name!r}")
            try:
                arguments = self.tools[call.name].validate(parse_arguments(call.arguments))
            except (MalformedJson, ToolError) as error:
                raise InvalidPlan(str(error)) from None
            steps.append(Step(f"s{index}", call.name, arguments))
        return Plan(tuple(steps), source)

    async def _execute(
        self, plan: Plan, context: ToolContext, trace: Trace, results: dict[str, tuple[Step, str]], budget: _Budget
    ) -> list[str]:
        """Run steps in dependency order; return what failed. A step whose dependency failed is skipped."""
        status: dict[str, str] = {}
        ok_results = {step_id: result for step_id, (_, result) in results.items()}
        pending = list(plan.steps)
        while pending:
            step = next(s for s in pending if all(d in status for d in s.depends_on))
            pending.remove(step)
            failed = [d for d in step.depends_on if status[d] != "ok"]
            if failed:
                self._record(trace, step, step.arguments, "skipped", f"skipped: step {failed[0]} did not succeed", 0)
                status[step.id] = "skipped"
                continue
            if limit := budget.exhausted():
                self._record(trace, step, step.arguments, "skipped", f"skipped: {limit}", 0)
                trace.not_done.append(f"{step.tool} was not run because {limit}")
                status[step.id] = "skipped"
                continue
            arguments = resolve_references(step.arguments, ok_results)
            status[step.id], result = await self._run_tool(step, arguments, context, trace, budget)
            if status[step.id] == "ok":
                ok_results[step.id] = result
                results[f"{trace.iterations}.{step.id}"] = (Step(step.id, step.tool, arguments), result)
        return [f"{r.step} ({r.tool}): {r.result}" for r in trace.tool_calls[-len(plan.steps):] if r.status != "ok"]

    async def _run_tool(
        self, step: Step, arguments: dict[str, Any], context: ToolContext, trace: Trace, budget: _Budget
    ) -> tuple[str, str]:
        budget.tool_calls += 1
        started = self.clock()
        tool = self.tools[step.tool]
        try:
            tool.validate(arguments)
            result = await asyncio.wait_for(asyncio.to_thread(tool.run, arguments, context), budget.seconds_left())
            status = "ok"
        except ToolError as error:
            status, result = "error", str(error)
        except asyncio.TimeoutError:
            status, result = "error", "the tool did not finish within the time limit"
        except Exception as error:  # a tool bug must not take the request down
            status, result = "error", f"the tool failed ({type(error).__name__})"
        self._record(trace, step, arguments, status, result, (self.clock() - started) * 1000)
        return status, result

    @staticmethod
    def _record(trace: Trace, step: Step, arguments: dict[str, Any], status: str, result: str, ms: float) -> None:
        trace.tool_calls.append(ToolCallRecord(step.id, step.tool, arguments, status, result, round(ms, 1)))

    async def _compose(
        self, request: str, results: dict[str, tuple[Step, str]], history: list[dict[str, str]], trace: Trace
    ) -> str:
        """The model words the answer; if its wording drops a number a tool computed, the results speak."""
        facts = "\n".join(f"- {step.tool}({json.dumps(step.arguments)}) = {result}" for step, result in results.values())
        messages = [{"role": "system", "content": self.system_prompt + "\n" + ANSWER_PROMPT.format(results=facts)},
                    *history, {"role": "user", "content": request}]
        answer = await self._complete_text(messages, trace)
        missing = _missing_numbers(request, answer, [result for _, result in results.values()])
        if answer and not missing:
            trace.reflections.append("the answer states every tool result")
            return answer
        trace.reflections.append(f"the model's answer left out {', '.join(missing) or 'everything'}; "
                                 "answering from the tool results directly")
        return " ".join(_describe(step, result) for step, result in results.values())


def _numbers(text: str) -> Counter[float]:
    return Counter(float(n) for n in _NUMBER.findall(text.replace(",", "")))


def _missing_numbers(request: str, answer: str, results: list[str]) -> list[str]:
    """The numbers of the results that the answer does not state (echoing the request does not count)."""
    stated = _numbers(answer) - _numbers(request)
    needed = Counter(n for result in results for n in _NUMBER.findall(result.replace(",", ""))[:MAX_CHECKED_NUMBERS])
    return [n for n, count in needed.items() if stated[float(n)] < count]


def _describe(step: Step, result: str) -> str:
    arguments = step.arguments
    if step.tool == "calculator":
        return f"{arguments['expression'].replace('**', '^')} = {result}."
    if step.tool == "convert_units":
        return f"{arguments['value']:g} {arguments['from_unit']} is {result}."
    if step.tool == "current_time":
        return f"It is {result}."
    return result if result.endswith((".", "!", "?")) else result + "."
