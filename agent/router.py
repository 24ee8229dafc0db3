"""The explicit choice of how to answer: at once, by an exact pattern, by the model's tool calls, or by a plan.

A request reaches the model with tools only when the tools' own signals match it (quantities with
operations or units, dates and times, notes, reminders, code); a plain question gets none."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.intents import Intent, detect
from agent.tools.base import Tool
from agent.tools.signals import NUMBER, NUMERAL

# A short request that leans on the one before it: "And in two pounds?", "what about 35?"
_FOLLOW_UP = re.compile(r"^\s*(?:and|what about|how about|now|ok(?:ay)?,?(?: and| now| so)?|so|then|same)\b", re.I)
_TOLD = re.compile(r"^\s*(?:i(?:'m| am| was|'ve| have| had| got)|my|we(?:'re| are|'ve| have)|our)\b", re.I)
_ASKS = re.compile(r"\?|\b(?:what|what's|how|when|which|who|why|where|whether|if|can|could|would|should|will|please|"
                   r"tell|work out|figure out|calculate|convert|compute)\b", re.I)
_NUMBERED = re.compile(NUMBER, re.I)
_NUMERALS = re.compile(NUMERAL)
Planner = Literal["hybrid", "model"]


@dataclass(frozen=True)
class RouteContext:
    """What the router may look at besides the request itself."""

    tool_names: frozenset[str] = frozenset()  # the tools this request may use
    offered: tuple[str, ...] = ()  # the tools whose signals the request matches (`select_tools`)
    planner: Planner = "hybrid"
    model_calls_tools: bool = False  # the engine turns the model's output into OpenAI tool calls
    # Every tool June has, private ones too: the first pattern that recognises the request claims it, and answers it
    # only where its tools are among `tool_names` (a note to remember in a group chat is not then read as arithmetic).
    registry: tuple[Tool, ...] = ()


@dataclass(frozen=True)
class Route:
    """`fast`: one model call, no tools; `rules`: an exact pattern gives the steps and their results are the
    answer; `tools`: the model may call the offered tools (OpenAI tool calls); `plan`: the model writes a plan
    to a JSON schema (models without a tool-call parser)."""

    kind: Literal["fast", "rules", "tools", "plan"]
    reasons: tuple[str, ...]
    intent: Intent | None = field(default=None, compare=False)
    tools: tuple[str, ...] = ()


def select_tools(request: str, previous_request: str | None, previous_answer: str | None,
                 tools: Mapping[str, Tool]) -> tuple[str, ...]:
    """The tools whose signals match the request. A short follow-up with no signal of its own leans on the
    exchange before it: with a number ("and in two pounds?") it takes the tools of the request before it; without
    one ("ok, and in kelvin?") the answer before it lends its numbers."""
    matched = _matching(request, tools)
    if not matched and _FOLLOW_UP.match(request):
        if _NUMBERED.search(request):
            matched = _matching(previous_request or "", tools)
        elif lent := " ".join(_NUMERALS.findall(previous_answer or "")):
            matched = _matching(f"{request} {lent}", tools)
    if is_told(request):
        matched = {name for name in matched if not tools[name].answers_questions}
    return tuple(name for name in tools if name in matched)


def is_told(request: str) -> bool:
    """Whether the request tells June something about the user and asks nothing ("I've got a 5 kilo bag of rice.",
    "I'm driving at 60 miles an hour"): the model acknowledges it; no calculator or converter answers it."""
    return bool(_TOLD.match(request)) and not _ASKS.search(request)


def _matching(text: str, tools: Mapping[str, Tool]) -> set[str]:
    return {name for name, tool in tools.items() if tool.signals and tool.signals.search(text)}


def decide(request: str, context: RouteContext) -> Route:
    if not context.tool_names:
        return Route("fast", ("no tools are available",))
    if context.planner == "hybrid":
        intent = detect(request, context.registry)
        if intent and all(step.tool in context.tool_names for step in intent.steps):
            return Route("rules", (intent.reason,), intent, tuple(dict.fromkeys(s.tool for s in intent.steps)))
    if not context.offered:
        return Route("fast", ("nothing in the request calls for a tool",))
    reason = f"may need {', '.join(context.offered)}"
    return Route("tools" if context.model_calls_tools else "plan", (reason,), tools=context.offered)
