"""The explicit choice of how to answer: at once, by exact patterns, by the model's tool calls, or by a plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from agent.intents import Intent, detect

_TOOL_WORDS = re.compile(r"\b(calculate|compute|convert|python|run (?:this|the) code|execute|remember|note|"
                         r"time zone|timezone|how (?:much|many|long|far)|percent|average|sum of)\b", re.I)
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (?:morning|afternoon|evening)|thanks?|thank you|bye)\b", re.I)
Planner = Literal["hybrid", "model"]


@dataclass(frozen=True)
class RouteContext:
    """What the router may look at besides the request itself."""

    tool_names: frozenset[str] = frozenset()
    history_turns: int = 0
    planner: Planner = "hybrid"
    model_calls_tools: bool = False  # the engine turns the model's output into OpenAI tool calls


@dataclass(frozen=True)
class Route:
    """`fast`: one model call, no tools; `rules`: an exact pattern gives the steps; `tools`: the model calls
    tools itself (OpenAI tool calls); `plan`: the model writes a plan to a JSON schema."""

    kind: Literal["fast", "rules", "tools", "plan"]
    reasons: tuple[str, ...]
    intent: Intent | None = field(default=None, compare=False)


def decide(request: str, context: RouteContext) -> Route:
    if not context.tool_names:
        return Route("fast", ("no tools are available",))
    if context.planner == "hybrid":
        intent = detect(request)
        if intent and all(step.tool in context.tool_names for step in intent.steps):
            return Route("rules", (intent.reason,), intent)
    if _GREETING.match(request) and len(request.split()) <= 6:
        return Route("fast", ("a greeting or thanks",))
    if context.model_calls_tools:
        return Route("tools", ("the model decides whether a tool is needed",))
    if match := _TOOL_WORDS.search(request):
        return Route("plan", (f"mentions {match[0].lower()!r}, which usually needs a tool",))
    if context.planner == "model":
        return Route("plan", ("the model plans every request",))
    return Route("fast", ("no sign that a tool is needed: a plain question or chat",))
