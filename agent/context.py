"""What the model sees for one request: the system prompt, what June knows that bears on the request, and as
much of the conversation as fits the model's window, counted in the model's own tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.types import RequestTooLong, Turn

TokenCount = Callable[[str], int]
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators around each chat message
TOOLS_TEMPLATE_TOKENS = 150  # the chat template's own words around the tool schemas
_SELF_STATEMENT = re.compile(
    r"\b(?:my\s+[\w' -]{1,40}?\s+(?:is|are|was)\b|i(?:'m| am)\s+(?:called|named|allergic|vegetarian|vegan|from)\b|"
    r"call me\b|i live in\b|i work (?:at|as|in|for)\b|i(?:'ve| have) (?:a|an|two|three|\d+)\s)", re.I)
MAX_FACTS = 5


def approximate_tokens(text: str) -> int:
    """An upper estimate for a model without a tokenizer file: about three characters a token."""
    return len(text) // 3 + 1


def load_token_counter(path: Path | None) -> TokenCount:
    """The model's own tokenizer (a tokenizer.json, read by `tokenizers` without torch), or an estimate where
    there is none (or it is not on this node)."""
    if path is None or not path.is_file():
        return approximate_tokens
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True)
class ContextWindow:
    max_model_len: int = 4096  # JuneSettings.llm_max_model_len's default
    count: TokenCount = approximate_tokens
    tool_result_tokens: int = 300

    def tokens(self, messages: list[dict[str, Any]]) -> int:
        return sum(self.count(_prompt_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def tools_tokens(self, tools: list[dict[str, Any]]) -> int:
        return self.count(json.dumps(tools)) + TOOLS_TEMPLATE_TOKENS if tools else 0

    def fit(self, head: list[dict[str, Any]], history: list[dict[str, str]], tail: list[dict[str, Any]],
            reserved: int) -> list[dict[str, Any]]:
        """head + the newest history that fits + tail; the oldest turns go first, whole exchanges at a time.

        `reserved` is what the reply and the tool schemas need. Raises RequestTooLong when head and tail alone
        do not fit."""
        budget = self.max_model_len - reserved - self.tokens(head)
        needed = self.tokens(tail)
        if needed > budget:
            raise RequestTooLong(needed, budget)
        budget -= needed
        kept: list[dict[str, str]] = []
        for turn in reversed(history):
            cost = self.tokens([turn])
            if cost > budget:
                break
            budget -= cost
            kept.insert(0, turn)
        while kept and kept[0]["role"] != "user":
            kept.pop(0)
        return [*head, *kept, *tail]

    def clip(self, text: str) -> str:
        """A tool result cut to its share of the window."""
        if self.count(text) <= self.tool_result_tokens:
            return text
        keep = len(text) * self.tool_result_tokens // max(self.count(text), 1)
        return text[:keep] + " … (cut)"


@dataclass(frozen=True)
class Briefing:
    """What June knows that may bear on one request, told to the model after the request."""

    now: str | None = None
    notes: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    def render(self) -> str:
        """Nothing, or a bracketed block to follow the request."""
        lines = [f"Now, for the user: {self.now}."] if self.now else []
        if self.notes:
            lines += ["Notes the user asked you to keep, in their words:", *(f"- {n}" for n in self.notes)]
        if self.facts:
            lines += ["Earlier in this conversation the user said:", *(f"- {f}" for f in self.facts)]
        if not lines:
            return ""
        return "\n\n[" + "\n".join(lines) + "\nUse these only when they help answer the request above.]"


def _prompt_text(message: dict[str, Any]) -> str:
    """What a message puts in the prompt besides its role: its content and any tool calls."""
    calls = message.get("tool_calls")
    return str(message.get("content") or "") + (json.dumps(calls) if calls else "")


def turn_messages(turns: list[Turn], with_tool_calls: bool) -> list[dict[str, Any]]:
    """The conversation as chat messages: an answer June gave after running tools follows its calls and their
    results, as the model saw them then; without `with_tool_calls` (a model with no tool format) only what was
    said."""
    messages: list[dict[str, Any]] = []
    for number, turn in enumerate(turns):
        if with_tool_calls and turn.tool_calls:
            ids = [f"call_h{number}_{index}" for index in range(len(turn.tool_calls))]
            calls = [{"id": id_, "type": "function",
                      "function": {"name": call.tool, "arguments": json.dumps(call.arguments)}}
                     for id_, call in zip(ids, turn.tool_calls)]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages += [{"role": "tool", "tool_call_id": id_, "content": call.result}
                         for id_, call in zip(ids, turn.tool_calls)]
        messages.append({"role": turn.role, "content": turn.content})
    return messages


def stated_facts(user_turns: list[str], already_shown: list[dict[str, str]]) -> list[str]:
    """The user's own statements about themselves ("my name is Priya") that the shown history no longer holds."""
    shown = {turn["content"] for turn in already_shown}
    facts = [text for text in user_turns if text not in shown and _SELF_STATEMENT.search(text)]
    return facts[:MAX_FACTS]
