"""The explicit choice between answering at once and planning with tools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from agent.intents import Intent, detect

_TOOL_WORDS = re.compile(r"\b(calculate|compute|convert|python|run (?:this|the) code|execute|remind|remember|note|"
                         r"time zone|timezone|how (?:much|many|long|far)|percent|average|sum of)\b", re.I)
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (?:morning|afternoon|evening)|thanks?|thank you|bye)\b", re.I)


@dataclass(frozen=True)
class RouteContext:
    """What the router may look at besides the request itself."""

    tool_names: frozenset[str] = frozenset()
    history_turns: int = 0


@dataclass(frozen=True)
class Route:
    kind: Literal["fast", "tools"]
    reasons: tuple[str, ...]
    intent: Intent | None = field(default=None, compare=False)


def decide(request: str, context: RouteContext) -> Route:
    if not context.tool_names:
        return Route("fast", ("no tools are available",))
    intent = detect(request)
    if intent and all(step.tool in context.tool_names for step in intent.steps):
        return Route("tools", (intent.reason,), intent)
    if match := _TOOL_WORDS.search(request):
        return Route("tools", (f"mentions {match[0].lower()!r}, which usually needs a tool",))
    if _GREETING.match(request) and len(request.split()) <= 6:
        return Route("fast", ("a greeting or thanks",))
    return Route("fast", ("no sign that a tool is needed: a plain question or chat",))
