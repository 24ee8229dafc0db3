"""The structured record of one request: route, thoughts, plan, tool calls, reflection."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ToolCallRecord:
    step: str
    tool: str
    arguments: dict[str, Any]
    status: str  # "ok", "error", "skipped"
    result: str
    duration_ms: float


@dataclass
class Trace:
    route: str = "fast"
    route_reasons: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    reflections: list[str] = field(default_factory=list)
    verdict: str = "answered"
    not_done: list[str] = field(default_factory=list)
    notes_consulted: int = 0  # the user's saved notes put beside the request
    history_turns: int = 0  # turns of the conversation that fitted the window
    llm_calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # served from the engine's prefix cache
    completion_tokens: int = 0
    iterations: int = 0
    cache: str = "none"
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
