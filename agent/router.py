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
from agent.tools.signals import NUMBER

# A short request that leans on the one before it: "And in two pounds?", "what about 35?"
_FOLLOW_UP = re.compile(r"^\s*(?:and|what about|how about|now|ok(?:ay)?,?(?: and| now| so)?|so|then|same)\b", re.I)
_NUMBERED = re.compile(NUMBER, re.I)
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


def select_tools(request: str, previous_request: str | None, tools: Mapping[str, Tool]) -> tuple[str, ...]:
    """The tools whose signals match the request; for a short follow-up with a number in it and no signal of its
    own ("and in two pounds?"), those of the request before it."""
    matched = tuple(name for name, tool in tools.items() if tool.signals and tool.signals.search(request))
    if matched or not previous_request or not (_FOLLOW_UP.match(request) and _NUMBERED.search(request)):
        return matched
    return tuple(name for name, tool in tools.items() if tool.signals and tool.signals.search(previous_request))


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
