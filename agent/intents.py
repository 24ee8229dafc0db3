"""Recognising requests that plainly need a tool, and the steps that serve them, without a model.

A 135M-parameter model rarely writes a valid plan; the tools' own exact patterns (`Tool.rule`) cover the common
spoken requests (arithmetic, time, units, notes) so they are exact and fast. Anything else goes to the model's
planner.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from text_to_num import alpha2digit

from agent.plan import Step
from agent.tools.base import Recognised, Rule, Tool

# Words that make a request more than one exact pattern can serve: a second step, or a place named earlier. Only
# words outside what a pattern covers count ("How many minutes are there in a week?" is the converter's alone).
_MORE_THAN_ONE_STEP = re.compile(r"\b(?:then|after that|afterwards|and (?:also|double|halve|triple|add|subtract|"
                                 r"multiply|divide|convert|tell|how)|there)\b", re.I)


@dataclass(frozen=True)
class Intent:
    reason: str
    steps: tuple[Step, ...]


def rules_in_order(tools: Collection[Tool], kind: Literal["command", "quantity"]) -> list[tuple[Tool, Rule]]:
    """The tools with a pattern of this kind, in the order they are tried: by rank, ties in the order given."""
    ruled = [(tool, tool.rule) for tool in tools if tool.rule is not None and tool.rule.kind == kind]
    return sorted(ruled, key=lambda pair: pair[1].rank)


def detect(text: str, tools: Collection[Tool]) -> Intent | None:
    """The first intent that the tools' patterns recognise, with the steps that answer it."""
    for tool, rule in rules_in_order(tools, "command"):
        if found := rule.recognise(text):
            return _intent(tool, found)
    in_digits = alpha2digit(text, "en")  # "seven times eight" is as exact as "7 times 8"
    for tool, rule in rules_in_order(tools, "quantity"):
        if found := rule.recognise(in_digits):
            return None if _MORE_THAN_ONE_STEP.search(found.rest_of(in_digits)) else _intent(tool, found)
    return None


def _intent(tool: Tool, found: Recognised) -> Intent:
    steps = tuple(Step(f"s{n}", tool.name, arguments) for n, arguments in enumerate(found.calls, 1))
    return Intent(found.reason, steps)
