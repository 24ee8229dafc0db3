"""The agent: one streamed loop. A request gets the tools its words call for (or none); every model call
streams, a tool call runs and its result goes back as a `tool` message, and the next round streams too."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from agent.cache import TtlLruCache
from agent.confirmations import CLARIFY, answer_to, resumed
from agent.context import Briefing, ContextWindow, stated_facts, turn_messages
from agent.executor import AgentLimits, Budget, Results, ToolExecutor, record
from agent.grounding import grounded, numbers_in, said_numbers, states_a_result
from agent.model import ChatModel, Completion, ToolCallRequest
from agent.plan import InvalidPlan, Plan, Step, parse_plan, plan_schema
from agent.router import Planner, Route, RouteContext, decide, select_tools
from agent.stores import Stores
from agent.toolcalls import MalformedJson, calls_in_text, may_be_a_call, parse_arguments
from agent.tools.base import ConfirmationNeeded, NothingFound, Tool, ToolContext, ToolError
from agent.tools.clock import TIMEZONE_PREFERENCE, describe_moment, placed, utc_now, zone
from agent.tools.memory import DELETE_NOTES, delete_confirmed
from common.types import AgentReply, ModelError, ToolUse, Trace, Turn
from speech.spoken import without_opening_filler

__all__ = ["Agent", "AgentLimits"]

TOOL_ROUND_RESERVE_TOKENS = 400  # tool calls and results added to the prompt while the request runs
PLAN_MAX_TOKENS = 320  # a plan of four steps, written without whitespace
TOOLS_PROMPT = ("Call a tool only when the answer needs it: exact arithmetic on the user's numbers (the whole "
                "calculation as one expression), a unit or time conversion, today's date or the time, the user's notes "
                "or reminders, or running code (that prints its result). Otherwise answer directly from what you know. "
                "When a tool has returned its result, answer the user's whole question with it in plain words, without "
                "mentioning tools or functions.")
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
# The tool sets requests most often get (a head each: their schemas follow the system prompt).
WARM_TOOL_SETS = (("calculator",), ("convert_units",), ("calculator", "convert_units"),
                  ("current_time", "convert_time"))
DECLINED = "Okay, I won't delete anything."
DROPPED = "Okay, I've dropped it."


@dataclass
class _Request:
    """One request on its way through the loop."""

    text: str
    context: ToolContext
    messages: list[dict[str, Any]]  # system, fitted history, the request (and what June knows for it)
    trace: Trace
    budget: Budget
    tools: dict[str, Tool]  # those offered to this request
    said: set[float]  # the numbers of the request, the conversation and the results so far: a call's must be one
    briefing: Briefing  # what follows the request in its message


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
        self.executor = ToolExecutor(code_runs, clock)

    def route(self, request: str, history: list[dict[str, Any]], tools: dict[str, Tool] | None = None) -> Route:
        tools = self.tools if tools is None else tools
        previous = next((turn["content"] for turn in reversed(history) if turn["role"] == "user"), None)
        answered = next((turn["content"] for turn in reversed(history)
                         if turn["role"] == "assistant" and turn.get("content")), None)
        offered = select_tools(request, previous, answered, tools)
        said = [text for text in (answered, previous) if text]  # the last exchange, the newest first
        context = RouteContext(frozenset(tools), offered, self.planner, self.model.supports_tools,
                               registry=tuple(self.tools.values()))
        return decide(placed(request, said), context)

    def history_messages(self, turns: list[Turn]) -> list[dict[str, Any]]:
        """A stored conversation as the model sees it, with the tool calls behind each answer where it has a tool
        format."""
        return turn_messages(turns, self.model.supports_tools)

    @staticmethod
    def tools_used(trace: Trace) -> list[ToolUse]:
        """The calls that ran for an answer, to store with it."""
        return [ToolUse(call.tool, call.arguments, call.result) for call in trace.tool_calls if call.status == "ok"]

    def available_tools(self, context: ToolContext) -> dict[str, Tool]:
        return self.tools if context.private else {n: t for n, t in self.tools.items() if not t.private}

    async def warm_up(self) -> None:
        """One token for the head every plain request starts with (the system prompt), then for the heads of the
        requests that most often need a tool (arithmetic, units, the clock), so the engine's prefix cache holds
        them before the first user's question has to wait for them."""
        greeting = {"role": "user", "content": "Hello."}
        await self.model.complete([{"role": "system", "content": self.system_prompt}, greeting], max_tokens=1)
        if not self.model.supports_tools:
            return
        for names in WARM_TOOL_SETS:
            if tools := [self.tools[name].openai_schema() for name in names if name in self.tools]:
                system = {"role": "system", "content": self.system_prompt + "\n" + TOOLS_PROMPT}
                await self.model.complete([system, greeting], tools=tools, max_tokens=1)

    async def respond(self, request: str, context: ToolContext, history: list[dict[str, Any]]) -> AgentReply:
        trace = Trace()
        text = "".join([delta async for delta in self.stream(request, context, history, trace)]).strip()
        return AgentReply(text, trace)

    async def stream(
        self, request: str, context: ToolContext, history: list[dict[str, Any]], trace: Trace | None = None
    ) -> AsyncIterator[str]:
        """The answer's text as the model writes it, at every round."""
        trace = trace if trace is not None else Trace()
        started = self.clock()
        try:
            async for delta in self._answer(request, context, history, trace):
                yield delta
        finally:
            trace.duration_ms = round((self.clock() - started) * 1000, 1)

    async def _answer(
        self, text: str, context: ToolContext, history: list[dict[str, Any]], trace: Trace
    ) -> AsyncIterator[str]:
        confirmation, text = self._confirmation(text, context, trace)
        if confirmation is not None:
            yield confirmation
            return
        context = replace(context, timezone=self._timezone(context.user_id))
        available = self.available_tools(context)
        route = self.route(text, history, available)
        trace.route, trace.route_reasons = route.kind, list(route.reasons)
        budget = Budget(self.limits, self.clock)
        if route.kind == "rules":
            answer = await self._by_rules(route, context, available, budget, trace)
            if answer is not None:
                yield answer
                return
            route = Route("tools" if self.model.supports_tools else "plan",
                          ("an exact pattern's step failed; the model answers",), tools=route.tools)
            trace.route, trace.route_reasons = route.kind, [*trace.route_reasons, *route.reasons]
        offered = {name: available[name] for name in route.tools}
        schemas = [tool.openai_schema() for tool in offered.values()] if route.kind == "tools" else []
        said = said_numbers([text, *(turn.get("content") or "" for turn in history)])
        briefing = self._briefing(text, context, history, route)
        trace.notes_consulted = len(briefing.notes)
        request = _Request(text, context, self._messages(text, briefing, history, route, schemas, trace), trace,
                           budget, offered, said, briefing)
        if route.kind == "fast":
            rounds = self._stream_text(request.messages, trace)
        elif route.kind == "tools":
            rounds = self._tool_rounds(request, schemas)
        else:
            rounds = self._plan_and_run(request, route)
        async for delta in rounds:
            yield delta

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

    def _briefing(self, text: str, context: ToolContext, history: list[dict[str, Any]], route: Route) -> Briefing:
        """The moment (only for requests that may need the clock), the user's notes and facts bearing on it."""
        now = (describe_moment(self.now(), zone(context.timezone))
               if {"current_time", "convert_time"} & set(route.tools) else None)
        if self.stores is None or not context.private:
            return Briefing(now)
        notes = [note.text for note in self.stores.notes.relevant(context.user_id, text)]
        older = (self.stores.history.user_turns(context.user_id, context.conversation_id)
                 if context.conversation_id else [])
        return Briefing(now, notes, stated_facts(older, history))

    def _messages(self, text: str, briefing: Briefing, history: list[dict[str, Any]], route: Route,
                  tools: list[dict[str, Any]], trace: Trace) -> list[dict[str, Any]]:
        """What stays the same across turns first, what changes last, so the engine serves the conversation from
        its prefix cache: the system prompt (with the offered tools' schemas), the history that fits, then the
        request, followed by what June knows for it."""
        system = self.system_prompt + ("\n" + TOOLS_PROMPT if tools else "")
        head = [{"role": "system", "content": system}]
        tail = [{"role": "user", "content": text + briefing.render()}]
        reserved = self.max_tokens + self.window.tools_tokens(tools) + (TOOL_ROUND_RESERVE_TOKENS
                                                                        if route.kind != "fast" else 0)
        messages = self.window.fit(head, history, tail, reserved)
        trace.history_turns = len(messages) - len(head) - len(tail)
        return messages

    async def _stream_text(self, messages: list[dict[str, Any]], trace: Trace) -> AsyncIterator[str]:
        completion = None
        async for item in without_opening_filler(self.model.stream(messages, max_tokens=self.max_tokens)):
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
            trace.cached_prompt_tokens += completion.cached_prompt_tokens
            trace.completion_tokens += completion.completion_tokens

    async def _by_rules(self, route: Route, context: ToolContext, tools: dict[str, Tool], budget: Budget,
                        trace: Trace) -> str | None:
        """The answer from the results of a pattern's steps, with no model call; None when a step failed."""
        assert route.intent is not None
        plan = Plan(route.intent.steps, "rules", (f"Recognised: {route.intent.reason}.",))
        trace.iterations = 1
        trace.plans.append({"source": plan.source, "thoughts": list(plan.thoughts),
                            "steps": [asdict(step) for step in plan.steps]})
        results: Results = {}
        try:
            failures = await self.executor.execute(plan, tools, context, budget, trace, results)
        except ConfirmationNeeded as question:
            return question.question
        if failures:
            trace.reflections.append(f"the pattern's steps failed ({'; '.join(failures)})")
            return None
        trace.reflections.append("every step succeeded; their results are the answer")
        return self._said(results, tools)

    @staticmethod
    def _said(results: Results, tools: dict[str, Tool]) -> str:
        return " ".join(tools[step.tool].spoken_result(step.arguments, result) for step, result in results.values())

    async def _tool_rounds(self, request: _Request, tools: list[dict[str, Any]]) -> AsyncIterator[str]:
        """Each round streams: text goes out as it comes unless it may still be a tool call written as text; the
        calls run and their results go back as `tool` messages for the next round, which streams too."""
        trace, messages = request.trace, list(request.messages)
        results: Results = {}
        for round_number in range(1, self.limits.max_iterations + 2):
            completion: Completion | None = None
            held: list[str] | None = []  # text that may still turn out to be a tool call written as text
            # The first round must call one of the offered tools: their signals matched the request, and a small
            # model asked to choose explains to the user how to use a calculator instead of calling it.
            rounds = self.model.stream(messages, tools=tools, max_tokens=self.max_tokens,
                                       require_tool=round_number == 1)
            async for item in without_opening_filler(rounds):
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
            completion = completion or Completion("")
            calls = completion.tool_calls or (calls_in_text(completion.text) if held is not None else [])
            if not calls:
                if held == [] and results:  # the model said nothing after the tools: their results speak
                    yield self._said(results, request.tools)
                else:
                    if held:
                        yield "".join(held)
                    quoted = [text for step, result in results.values()
                              if (text := request.tools[step.tool].quoted(result))]
                    if results and not states_a_result(completion.text, (str(r) for _, r in results.values()), quoted):
                        trace.reflections.append(f"round {round_number}: the answer did not state the tools' "
                                                 "result; it follows the answer")
                        yield " " + self._said(results, request.tools)
                self._finish(trace)
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
                    async for delta in self._plan_and_run(request, None, invalid, tools):
                        yield delta
                else:  # the model reached for tools June does not have: it knows no tool fits
                    trace.reflections.append(f"the model's tool calls were invalid ({invalid}); answering plainly")
                    async for delta in self._plain(request):
                        yield delta
                return
            if results and {_shape(step) for step in steps} <= {_shape(step) for step, _ in results.values()}:
                # Small models call the same tool again on its own result instead of answering.
                trace.reflections.append(f"round {round_number}: the model called {', '.join(c.name for c in calls)} "
                                         "again; answering from the results so far")
                yield self._said(results, request.tools)
                self._finish(trace)
                return
            baseless = [step for step in steps if not _has_ground(step, request)]
            for step in baseless:
                record(trace, step, step.arguments, "skipped", "skipped: none of its numbers was said", 0)
            if baseless and len(baseless) == len(steps):
                trace.reflections.append(f"round {round_number}: the model called {', '.join(s.tool for s in steps)} "
                                         "with numbers nobody said; answering without tools")
                async for delta in self._plain(request) if not results else self._said_once(results, request):
                    yield delta
                return
            steps = [step for step in steps if step not in baseless]
            if round_number > self.limits.max_iterations or request.budget.exhausted():
                trace.not_done.append(request.budget.exhausted() or
                                      f"the limit of {self.limits.max_iterations} tool rounds was reached")
                break
            outcomes = []
            for step in steps:
                try:
                    outcomes.append(await self.executor.run(step, step.arguments, request.tools[step.tool],
                                                            request.context, request.budget, trace))
                except ConfirmationNeeded as question:
                    yield question.question
                    return
            for step, (status, result) in zip(steps, outcomes):
                if status == "ok":
                    results[f"{round_number}.{step.id}"] = (step, result)
                    request.said |= numbers_in(result)
            failed = [f"{step.tool}: {result}" for step, (status, result) in zip(steps, outcomes) if status != "ok"]
            if failed and not results:
                # Told only of errors, a small model apologises ("I'm sorry, but I can't help with that"); without
                # the tools it answers as it would have alone.
                trace.reflections.append(f"round {round_number}: every step failed ({'; '.join(failed)}); "
                                         "answering without tools")
                async for delta in self._plain(request):
                    yield delta
                return
            verdict = f"steps failed ({'; '.join(failed)}); the model sees the errors" if failed else "every step succeeded"
            trace.reflections.append(f"round {round_number}: {verdict}")
            messages += _tool_messages(completion, steps, [self.window.clip(result) for _, result in outcomes])
        async for delta in self._said_once(results, request) if results else self._plain(request):
            yield delta

    async def _said_once(self, results: Results, request: _Request) -> AsyncIterator[str]:
        yield self._said(results, request.tools) + self._finish(request.trace)

    @staticmethod
    def _finish(trace: Trace) -> str:
        """Set the verdict; what the answer must add when something was not done."""
        trace.verdict = "answered" if not trace.not_done else "partial"
        return " I could not finish everything: " + "; ".join(trace.not_done) + "." if trace.not_done else ""

    @staticmethod
    def _steps_from_calls(calls: list[ToolCallRequest], round_number: int,
                          tools: dict[str, Tool]) -> tuple[list[Step], list[str], list[Any]]:
        """The model's tool calls as steps, what is wrong with the arguments of any, and the names of tools that
        were not offered (any shape can come back)."""
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
                            tools: list[dict[str, Any]] | None = None) -> AsyncIterator[str]:
        """Plan (the model writing to the plan's JSON schema), run, reflect, re-plan, answer (streamed).

        `tools`: the schemas a tool round showed; the re-plan shows them again, so the engine reuses the cached
        prompt prefix."""
        trace = request.trace
        if route is not None:
            trace.thoughts.append(f"The request {route.reasons[0]}; planning the tool calls.")
        results: Results = {}
        rounds = 0
        while rounds < self.limits.max_iterations:
            plan = await self._model_plan(request, feedback, tools)
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
            baseless = [s for s in plan.steps if not s.depends_on and not _has_ground(s, request)]
            if baseless:
                trace.reflections.append(f"the plan called {', '.join(s.tool for s in baseless)} with numbers "
                                         "nobody said; answering without tools")
                break
            try:
                failures = await self.executor.execute(plan, request.tools, request.context, request.budget, trace,
                                                       results)
                request.said |= said_numbers(result for _, result in results.values())
            except ConfirmationNeeded as question:
                yield question.question
                return
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
            if trace.plans and any(p["steps"] for p in trace.plans):
                trace.not_done.append("no tool produced a result, so this answer comes from the model alone")
            async for delta in self._plain(request):
                yield delta
            return
        async for delta in self._compose(request, results):
            yield delta

    async def _plain(self, request: _Request) -> AsyncIterator[str]:
        """The model's own answer, without tools: the plain head (its cache warm) before the same history and
        request, and without the moment told for the clock's tools (given "7:45 pm plus 2 hours 20" and today's
        date and time, a small model answers "9:05 pm on Monday 07 December")."""
        request.trace.verdict = "plain-answer"
        asked = {"role": "user", "content": request.text + replace(request.briefing, now=None).render()}
        messages = [{"role": "system", "content": self.system_prompt}, *request.messages[1:-1], asked]
        async for delta in self._stream_text(messages, request.trace):
            yield delta

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

    async def _compose(self, request: _Request, results: Results) -> AsyncIterator[str]:
        """The model words the answer from a plan's results, streamed; where it says nothing, the results do."""
        if _found_nothing(results):
            request.trace.reflections.append("the tools found nothing: June says so in their words")
            yield self._said(results, request.tools) + self._finish(request.trace)
            return
        facts = "\n".join(f"- {step.tool}({json.dumps(step.arguments)}) = {self.window.clip(result)}"
                          for step, result in results.values())
        system = request.messages[0]["content"] + "\n" + ANSWER_PROMPT.format(results=facts)
        messages = [{"role": "system", "content": system}, *request.messages[1:]]
        spoke = False
        async for delta in self._stream_text(messages, request.trace):
            spoke = spoke or bool(delta.strip())
            yield delta
        if not spoke:
            yield self._said(results, request.tools)
        if note := self._finish(request.trace):
            yield note


def _tool_messages(completion: Completion, steps: list[Step], results: list[str]) -> list[dict[str, Any]]:
    """The assistant's tool calls and their results, as the chat template expects them for the next round."""
    calls = [{"id": f"call_{step.id}", "type": "function",
              "function": {"name": step.tool, "arguments": json.dumps(step.arguments)}} for step in steps]
    return [{"role": "assistant", "content": completion.text or None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": f"call_{step.id}", "content": result}
              for step, result in zip(steps, results))]


def _has_ground(step: Step, request: _Request) -> bool:
    """A program's numbers are its own (`range(2, 100)`); any other call's must have been said."""
    return request.tools[step.tool].runs_code or grounded(step.arguments, request.said)


def _shape(step: Step) -> tuple[Any, ...]:
    """A call without its numbers: converting 7.05 g to oz after 200 g to oz is the same call again."""
    return step.tool, tuple(sorted((k, str(v)) for k, v in step.arguments.items() if not isinstance(v, int | float)))


def _found_nothing(results: Results) -> bool:
    return bool(results) and all(isinstance(result, NothingFound) for _, result in results.values())
