"""The agent: think → plan → execute → reflect → answer, within limits, with a trace of every step."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from agent.cache import TtlLruCache
from agent.confirmations import CLARIFY, answer_to, resumed
from agent.context import Briefing, ContextWindow, stated_facts
from agent.model import ChatModel, Completion, ModelError, ToolCallRequest
from agent.plan import InvalidPlan, Plan, Step, parse_plan, plan_schema, resolve_references
from agent.router import Planner, Route, RouteContext, decide
from agent.speech import for_speech
from agent.stores import Stores
from agent.toolcalls import MalformedJson, calls_in_text, may_be_a_call, parse_arguments
from agent.tools.base import ConfirmationNeeded, NothingFound, Tool, ToolContext, ToolError
from agent.tools.clock import TIMEZONE_PREFERENCE, describe_moment, utc_now, zone
from agent.tools.memory import DELETE_NOTES, delete_confirmed
from agent.trace import ToolCallRecord, Trace

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MAX_CHECKED_NUMBERS = 6
QUICK_TOOL_THREADS = 8
TOOL_ROUND_RESERVE_TOKENS = 400
PLAN_MAX_TOKENS = 320  # a plan of four steps, written without whitespace  # tool calls and results added to the prompt while the request runs
TOOLS_PROMPT = ("Use a tool whenever the answer needs arithmetic, a unit or time-zone conversion, the current time, "
                "the user's notes or running code; never guess a number a tool can compute. When the user tells you "
                "something to keep, save it with remember_note. Otherwise answer directly.")
PLANNING_PROMPT = """You plan tool calls for a voice assistant. Tools:
{tools}
Reply with JSON: {{"thoughts": "<what is asked and what is missing>", "steps": [{{"id": "s1", "tool": "<tool name>", \
"arguments": {{...}}, "depends_on": []}}]}}. A later step may use an earlier result by writing {{{{s1}}}} in its \
arguments. When no tool is needed, give no steps."""
REPLAN_PROMPT = ("Reply with a plan as JSON instead of tool calls: {\"thoughts\": \"...\", \"steps\": [{\"id\": \"s1\", "
                 "\"tool\": \"<tool name>\", \"arguments\": {...}, \"depends_on\": []}]}; a later step may use an "
                 "earlier result by writing {{s1}} in its arguments; no steps when no tool is needed.")
ANSWER_PROMPT = """Answer the user's request in one or two short sentences using these tool results:
{results}"""
DECLINED = "Okay, I won't delete anything."
DROPPED = "Okay, I've dropped it."


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


@dataclass
class _Request:
    """One request on its way through the loop."""

    text: str
    context: ToolContext
    messages: list[dict[str, Any]]  # system, fitted history, the request after what June knows for it
    trace: Trace
    budget: _Budget
    tools: dict[str, Tool]  # those this request may use: no private ones where others may read the answer


class Agent:
    def __init__(
        self,
        model: ChatModel,
        tools: list[Tool],
        *,
        system_prompt: str,
        limits: AgentLimits = AgentLimits(),
        planner: Planner = "hybrid",
        plan_cache: TtlLruCache[Plan] | None = None,
        max_tokens: int = 160,
        window: ContextWindow = ContextWindow(),
        stores: Stores | None = None,
        default_timezone: str = "UTC",
        code_runs: int = 2,
        now: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.model, self.tools = model, {tool.name: tool for tool in tools}
        self.system_prompt, self.limits, self.planner = system_prompt, limits, planner
        self.plan_cache = plan_cache if plan_cache is not None else TtlLruCache()
        self.max_tokens, self.window, self.stores = max_tokens, window, stores
        self.default_timezone, self.now, self.clock = default_timezone, now, clock
        # Programs get a pool of their own: a slow one never holds up another user's calculator.
        self._code_pool = ThreadPoolExecutor(code_runs, thread_name_prefix="june-code")
        self._tool_pool = ThreadPoolExecutor(QUICK_TOOL_THREADS, thread_name_prefix="june-tool")

    def route(self, request: str, history: list[dict[str, str]], tools: dict[str, Tool] | None = None) -> Route:
        names = frozenset(self.tools if tools is None else tools)
        return decide(request, RouteContext(names, len(history), self.planner, self.model.supports_tools))

    def available_tools(self, context: ToolContext) -> dict[str, Tool]:
        return self.tools if context.private else {n: t for n, t in self.tools.items() if not t.private}

    async def warm_up(self) -> None:
        """One token for the head every tool-route request starts with (the system prompt and the tool schemas), so
        the engine's prefix cache holds it before the first user's question has to wait for it."""
        tools = [tool.openai_schema() for tool in self.tools.values()]
        if not (tools and self.model.supports_tools):
            return
        system = self.system_prompt + "\n" + TOOLS_PROMPT
        await self.model.complete([{"role": "system", "content": system}, {"role": "user", "content": "Hello."}],
                                  tools=tools, max_tokens=1)

    async def respond(self, request: str, context: ToolContext, history: list[dict[str, str]]) -> AgentReply:
        trace = Trace()
        text = "".join([delta async for delta in self.stream(request, context, history, trace)]).strip()
        return AgentReply(text, for_speech(text, request), trace)

    async def stream(
        self, request: str, context: ToolContext, history: list[dict[str, str]], trace: Trace | None = None
    ) -> AsyncIterator[str]:
        """The answer's text: streamed from the model while no tool has run, whole once tools were used."""
        trace = trace if trace is not None else Trace()
        started = self.clock()
        try:
            async for delta in self._answer(request, context, history, trace):
                yield delta
        finally:
            trace.duration_ms = round((self.clock() - started) * 1000, 1)

    async def _answer(
        self, text: str, context: ToolContext, history: list[dict[str, str]], trace: Trace
    ) -> AsyncIterator[str]:
        confirmation, text = self._confirmation(text, context, trace)
        if confirmation is not None:
            yield confirmation
            return
        context = replace(context, timezone=self._timezone(context.user_id))
        available = self.available_tools(context)
        route = self.route(text, history, available)
        trace.route, trace.route_reasons = route.kind, list(route.reasons)
        tools = [tool.openai_schema() for tool in available.values()] if route.kind == "tools" else []
        request = _Request(text, context, self._messages(text, context, history, route, tools, trace), trace,
                           _Budget(self.limits, self.clock), available)
        if route.kind == "fast":
            async for delta in self._stream_text(request.messages, trace):
                yield delta
        elif route.kind == "tools":
            async for delta in self._tool_rounds(request, tools):
                yield delta
        else:
            yield await self._plan_and_run(request, route)

    def _confirmation(self, text: str, context: ToolContext, trace: Trace) -> tuple[str | None, str]:
        """The answer to a question June asked last turn, if this message answers it, and the request to go on
        with: a question back ("When should I remind you?") resumes the first request with the user's answer."""
        if self.stores is None:
            return None, text
        pending = self.stores.pending.take(context.user_id, context.conversation_id)
        if pending is None:
            return None, text
        answer = answer_to(text)
        trace.route = "confirmation"
        if pending.action == CLARIFY:
            if answer == "no":
                trace.route_reasons = ["the user dropped the request June asked back about"]
                return DROPPED, text
            trace.reflections.append(f"resumed the request June asked back about: {pending.question!r}")
            return None, resumed(pending.payload, text)
        if answer == "yes" and pending.action == DELETE_NOTES:
            trace.route_reasons = ["the user said yes to a pending deletion"]
            return delete_confirmed(self.stores.notes, context.user_id, pending.payload), text
        if answer == "no":
            trace.route_reasons = ["the user said no to a pending deletion"]
            return DECLINED, text
        trace.reflections.append("a pending deletion was dropped: the user asked something else")
        return None, text

    def _timezone(self, user_id: str) -> str:
        chosen = self.stores.preferences.get(user_id, TIMEZONE_PREFERENCE) if self.stores else None
        return chosen or self.default_timezone

    def _briefing(self, text: str, context: ToolContext, history: list[dict[str, str]]) -> Briefing:
        now = describe_moment(self.now(), zone(context.timezone))
        if self.stores is None or not context.private:
            return Briefing(now)
        notes = [note.text for note in self.stores.notes.relevant(context.user_id, text)]
        older = (self.stores.history.user_turns(context.user_id, context.conversation_id)
                 if context.conversation_id else [])
        return Briefing(now, notes, stated_facts(older, history))

    def _messages(self, text: str, context: ToolContext, history: list[dict[str, str]], route: Route,
                  tools: list[dict[str, Any]], trace: Trace) -> list[dict[str, Any]]:
        """System prompt first (with the tool schemas, a prefix the engine can cache), then the history that fits,
        then the request, led by what June knows for it (small models heed the user's turn most)."""
        system = self.system_prompt + ("\n" + TOOLS_PROMPT if tools else "")
        head = [{"role": "system", "content": system}]
        briefing = self._briefing(text, context, history)
        trace.notes_consulted = len(briefing.notes)
        tail = [{"role": "user", "content": briefing.render() + "\n\n" + text}]
        reserved = self.max_tokens + self.window.tools_tokens(tools) + (TOOL_ROUND_RESERVE_TOKENS
                                                                        if route.kind != "fast" else 0)
        messages = self.window.fit(head, history, tail, reserved)
        trace.history_turns = len(messages) - len(head) - len(tail)
        return messages

    async def _stream_text(self, messages: list[dict[str, Any]], trace: Trace) -> AsyncIterator[str]:
        completion = None
        async for item in self.model.stream(messages, max_tokens=self.max_tokens):
            if isinstance(item, Completion):
                completion = item
            else:
                yield item
        self._count(trace, completion)

    async def _complete(self, messages: list[dict[str, Any]], trace: Trace, **options: Any) -> Completion:
        completion = await self.model.complete(messages, **{"max_tokens": self.max_tokens, **options})
        self._count(trace, completion)
        return completion

    @staticmethod
    def _count(trace: Trace, completion: Completion | None) -> None:
        trace.llm_calls += 1
        if completion is not None:
            trace.prompt_tokens += completion.prompt_tokens
            trace.completion_tokens += completion.completion_tokens

    async def _tool_rounds(self, request: _Request, tools: list[dict[str, Any]]) -> AsyncIterator[str]:
        """The model calls tools (OpenAI tool calls through the engine's parser), sees their results and either
        calls more — a multi-step request takes several rounds — or answers. Text is streamed until a tool runs."""
        trace, messages = request.trace, list(request.messages)
        results: dict[str, tuple[Step, str]] = {}
        for round_number in range(1, self.limits.max_iterations + 2):
            completion: Completion | None = None
            held: list[str] | None = []  # text that may still turn out to be a tool call written as text
            if not results:
                async for item in self.model.stream(messages, tools=tools, max_tokens=self.max_tokens):
                    if isinstance(item, Completion):
                        completion = item
                    elif held is None:
                        yield item
                    else:
                        held.append(item)
                        if not may_be_a_call("".join(held)):
                            yield "".join(held)
                            held = None
                self._count(trace, completion)
            else:
                completion = await self._complete(messages, trace, tools=tools)
            completion = completion or Completion("")
            calls = completion.tool_calls or (calls_in_text(completion.text) if held is not None else [])
            if not calls:
                if results:
                    yield self._checked_answer(request, completion.text.strip(), results)
                elif held:
                    yield "".join(held)
                return
            if not completion.tool_calls:  # the calls were the text itself
                completion = replace(completion, text="", tool_calls=calls)
            trace.iterations = round_number
            steps, problems, unknown = self._steps_from_calls(completion.tool_calls, round_number, request.tools)
            trace.plans.append({"source": "model-tools", "thoughts": [completion.text] if completion.text else [],
                                "steps": [asdict(step) for step in steps]})
            if problems or unknown:
                invalid = "; ".join([*problems, *(f"unknown tool {name!r}" for name in unknown)])
                if problems:  # a real tool with arguments of the wrong shape: the schema gets them right
                    trace.reflections.append(f"the model's tool calls were invalid ({invalid}); planning again to "
                                             "a schema")
                    yield await self._plan_and_run(request, None, invalid, tools)
                else:  # the model reached for tools June does not have: it knows no tool fits
                    trace.reflections.append(f"the model's tool calls were invalid ({invalid}); answering plainly")
                    trace.verdict = "plain-answer"
                    yield await self._plain(request)
                return
            if results and {_shape(step) for step in steps} <= {_shape(step) for step, _ in results.values()}:
                # Small models call the same tool again on its own result instead of answering.
                trace.reflections.append(f"round {round_number}: the model called {', '.join(c.name for c in calls)} "
                                         "again; answering from the results so far")
                trace.verdict = "answered"
                yield " ".join(_describe(step, result) for step, result in results.values())
                return
            if round_number > self.limits.max_iterations or request.budget.exhausted():
                trace.not_done.append(request.budget.exhausted() or
                                      f"the limit of {self.limits.max_iterations} tool rounds was reached")
                break
            outcomes = []
            for step in steps:
                try:
                    outcomes.append(await self._run_tool(step, step.arguments, request))
                except ConfirmationNeeded as question:
                    yield question.question
                    return
            for step, (status, result) in zip(steps, outcomes):
                if status == "ok":
                    results[f"{round_number}.{step.id}"] = (step, result)
            failed = [f"{step.tool}: {result}" for step, (status, result) in zip(steps, outcomes) if status != "ok"]
            verdict = f"steps failed ({'; '.join(failed)}); the model sees the errors" if failed else "every step succeeded"
            trace.reflections.append(f"round {round_number}: {verdict}")
            messages += _tool_messages(completion, steps, [self.window.clip(result) for _, result in outcomes])
        if results:
            yield await self._compose(request, results)
        else:
            trace.verdict = "plain-answer"
            yield await self._plain(request)

    @staticmethod
    def _steps_from_calls(calls: list[ToolCallRequest], round_number: int,
                          tools: dict[str, Tool]) -> tuple[list[Step], list[str], list[Any]]:
        """The model's tool calls as steps, what is wrong with the arguments of any, and the names of tools that
        do not exist (any shape can come back)."""
        steps, problems, unknown = [], [], []
        for index, call in enumerate(calls, 1):
            step_id = f"r{round_number}s{index}"
            if not isinstance(call.name, str) or call.name not in tools:
                unknown.append(call.name)
                continue
            try:
                arguments = tools[call.name].validate(parse_arguments(call.arguments))
            except (MalformedJson, ToolError) as error:
                problems.append(f"{call.name}: {error}")
                continue
            steps.append(Step(step_id, call.name, arguments))
        return steps, problems, unknown

    async def _plan_and_run(self, request: _Request, route: Route | None, feedback: str | None = None,
                            tools: list[dict[str, Any]] | None = None) -> str:
        """Plan (exact rules, or the model writing to the plan's JSON schema), run, reflect, re-plan, answer.

        `tools`: the schemas a tool round showed; the re-plan shows them again, so the engine reuses the cached
        prompt prefix."""
        trace = request.trace
        if route is not None and route.kind == "plan":
            trace.thoughts.append(f"The request {route.reasons[0]}; planning the tool calls.")
        results: dict[str, tuple[Step, str]] = {}
        rounds = 0
        while rounds < self.limits.max_iterations:
            plan = (Plan(route.intent.steps, "rules", (f"Recognised: {route.intent.reason}.",))
                    if feedback is None and route is not None and route.intent is not None
                    else await self._model_plan(request, feedback, tools))
            if plan is None:
                break
            rounds += 1
            trace.iterations += 1
            trace.plans.append({"source": plan.source, "thoughts": list(plan.thoughts),
                                "steps": [asdict(step) for step in plan.steps]})
            trace.thoughts.extend(plan.thoughts)
            if not plan.steps:
                trace.reflections.append("the plan needs no tool")
                break
            try:
                failures = await self._execute(plan, request, results)
            except ConfirmationNeeded as question:
                return question.question
            feedback = "; ".join(failures) if failures else None
            if not feedback:
                trace.reflections.append("every step succeeded")
                break
            limit = request.budget.exhausted()
            if limit or rounds >= self.limits.max_iterations:
                trace.reflections.append(f"steps failed ({feedback}); no budget left to try again")
                trace.not_done.append(limit or f"the limit of {self.limits.max_iterations} planning rounds was reached")
                break
            trace.reflections.append(f"steps failed ({feedback}); planning again with the errors shown")
        if not results:
            trace.verdict = "plain-answer"
            if trace.plans and any(p["steps"] for p in trace.plans):
                trace.not_done.append("no tool produced a result, so this answer comes from the model alone")
            return await self._plain(request)
        return await self._compose(request, results)

    async def _plain(self, request: _Request) -> str:
        return (await self._complete(request.messages, request.trace)).text.strip()

    async def _model_plan(self, request: _Request, feedback: str | None,
                          tools: list[dict[str, Any]] | None = None) -> Plan | None:
        context, trace = request.context, request.trace
        key = (context.user_id, context.conversation_id, " ".join(request.text.lower().split()), feedback)
        cached = self.plan_cache.get(key)
        trace.cache = "hit" if cached else "miss"
        if cached:
            return cached
        asked = request.messages[-1]["content"] + (f"\nThe last attempt failed: {feedback}" if feedback else "")
        if tools:
            messages = [*request.messages[:-1], {"role": "user", "content": asked + "\n\n" + REPLAN_PROMPT}]
        else:
            tool_list = "\n".join(f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters['properties'])}"
                                  for t in request.tools.values())
            messages = [{"role": "system", "content": PLANNING_PROMPT.format(tools=tool_list)},
                        *request.messages[1:-1], {"role": "user", "content": asked}]
        schema = plan_schema(request.tools)
        for source in ("model", "model-retry"):
            try:
                completion = await self._complete(messages, trace, schema=schema, tools=tools,
                                                  max_tokens=PLAN_MAX_TOKENS)
                plan = parse_plan(completion.text, request.tools, source)
            except InvalidPlan as error:
                trace.reflections.append(f"the {source} plan was invalid: {error}")
                messages += [{"role": "assistant", "content": completion.text},
                             {"role": "user", "content": f"That plan is invalid: {error}. Reply with corrected JSON."}]
                continue
            except ModelError as error:
                if error.status_code != 400:
                    raise
                trace.reflections.append(f"the engine refused the plan request: {error}")
                return None
            self.plan_cache.put(key, plan)
            return plan
        return None

    async def _execute(self, plan: Plan, request: _Request, results: dict[str, tuple[Step, str]]) -> list[str]:
        """Run steps in dependency order; return what failed. A step whose dependency failed is skipped."""
        trace, budget = request.trace, request.budget
        status: dict[str, str] = {}
        ok_results = {step_id.split(".", 1)[1]: result for step_id, (_, result) in results.items()}
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
            status[step.id], result = await self._run_tool(step, arguments, request)
            if status[step.id] == "ok":
                ok_results[step.id] = result
                results[f"{trace.iterations}.{step.id}"] = (Step(step.id, step.tool, arguments), result)
        return [f"{r.step} ({r.tool}): {r.result}" for r in trace.tool_calls[-len(plan.steps):] if r.status != "ok"]

    async def _run_tool(self, step: Step, arguments: dict[str, Any], request: _Request) -> tuple[str, str]:
        """Run one tool within the budget; ConfirmationNeeded passes through (it is the turn's answer)."""
        request.budget.tool_calls += 1
        started = self.clock()
        tool = request.tools[step.tool]
        try:
            tool.validate(arguments)
            pool = self._code_pool if tool.runs_code else self._tool_pool
            run = asyncio.get_running_loop().run_in_executor(pool, tool.run, arguments, request.context)
            result = await asyncio.wait_for(run, request.budget.seconds_left())
            status = "ok"
        except ConfirmationNeeded as question:
            self._record(request.trace, step, arguments, "needs-confirmation", question.question,
                         (self.clock() - started) * 1000)
            raise
        except ToolError as error:
            status, result = "error", str(error)
        except asyncio.TimeoutError:
            status, result = "error", "the tool did not finish within the time limit"
        except Exception as error:  # a tool bug must not take the request down
            status, result = "error", f"the tool failed ({type(error).__name__})"
        self._record(request.trace, step, arguments, status, result, (self.clock() - started) * 1000)
        return status, result

    @staticmethod
    def _record(trace: Trace, step: Step, arguments: dict[str, Any], status: str, result: str, ms: float) -> None:
        trace.tool_calls.append(ToolCallRecord(step.id, step.tool, arguments, status, result, round(ms, 1)))

    async def _compose(self, request: _Request, results: dict[str, tuple[Step, str]]) -> str:
        """The model words the answer from the tool results."""
        if _found_nothing(results):
            return self._checked_answer(request, "", results)
        facts = "\n".join(f"- {step.tool}({json.dumps(step.arguments)}) = {self.window.clip(result)}"
                          for step, result in results.values())
        system = request.messages[0]["content"] + "\n" + ANSWER_PROMPT.format(results=facts)
        messages = [{"role": "system", "content": system}, *request.messages[1:]]
        answer = (await self._complete(messages, request.trace)).text.strip()
        return self._checked_answer(request, answer, results)

    def _checked_answer(self, request: _Request, answer: str, results: dict[str, tuple[Step, str]]) -> str:
        """The model's answer if it states every number a tool computed; otherwise the results speak."""
        trace = request.trace
        trace.verdict = "answered" if not trace.not_done else "partial"
        missing = _missing_numbers(request.text, answer, [result for _, result in results.values()])
        if _found_nothing(results):
            trace.reflections.append("the tools found nothing: June says so in their words")
            answer = " ".join(_describe(step, result) for step, result in results.values())
        elif answer and not missing:
            trace.reflections.append("the answer states every tool result")
        else:
            trace.reflections.append(f"the model's answer left out {', '.join(missing) or 'everything'}; "
                                     "answering from the tool results directly")
            answer = " ".join(_describe(step, result) for step, result in results.values())
        if trace.not_done:
            answer += " I could not finish everything: " + "; ".join(trace.not_done) + "."
        return answer


def _tool_messages(completion: Completion, steps: list[Step], results: list[str]) -> list[dict[str, Any]]:
    """The assistant's tool calls and their results, as the chat template expects them for the next round."""
    calls = [{"id": f"call_{step.id}", "type": "function",
              "function": {"name": step.tool, "arguments": json.dumps(step.arguments)}} for step in steps]
    return [{"role": "assistant", "content": completion.text or None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": f"call_{step.id}", "content": result}
              for step, result in zip(steps, results))]


def _shape(step: Step) -> tuple[Any, ...]:
    """A call without its numbers: converting 7.05 g to oz after 200 g to oz is the same call again."""
    return step.tool, tuple(sorted((k, str(v)) for k, v in step.arguments.items() if not isinstance(v, int | float)))


def _numbers(text: str) -> Counter[float]:
    return Counter(float(n) for n in _NUMBER.findall(text.replace(",", "")))


def _missing_numbers(request: str, answer: str, results: list[str]) -> list[str]:
    """The numbers of the results that the answer does not state (echoing the request does not count)."""
    stated = _numbers(answer) - _numbers(request)
    needed = Counter(n for result in results for n in _NUMBER.findall(result.replace(",", ""))[:MAX_CHECKED_NUMBERS])
    return [n for n, count in needed.items() if stated[float(n)] < count]


def _found_nothing(results: dict[str, tuple[Step, str]]) -> bool:
    return bool(results) and all(isinstance(result, NothingFound) for _, result in results.values())


def _describe(step: Step, result: str) -> str:
    arguments = step.arguments
    if step.tool == "calculator":
        return f"{arguments['expression'].replace('**', '^')} = {result}."
    if step.tool == "convert_units":
        return f"{arguments['value']:g} {arguments['from_unit']} is {result}."
    if step.tool == "current_time":
        return f"It is {result}."
    return result if result.endswith((".", "!", "?")) else result + "."
