"""Recognising requests that plainly need a tool, and the steps that serve them, without a model.

A 135M-parameter model rarely writes a valid plan; these patterns cover the common spoken
requests (arithmetic, time, units, notes) so they are exact and fast. Anything else goes to
the model's planner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from text_to_num import alpha2digit

from agent.notes import content_words
from agent.plan import Step
from agent.schedule import read_reminder
from agent.tools.base import ToolError
from agent.tools.clock import zone, zones_named_in
from agent.tools.units import canonical

_NUMBER = r"-?(?<![\d.,])\d+(?:[.,]\d+)*"  # read from its first digit: a start mid-run would rescan the run
_SPOKEN_OPERATORS = [
    (r"\bsquare root of\s+(" + _NUMBER + ")", r"sqrt(\1)"),
    (r"(" + _NUMBER + r")\s*(?:%|percent)\s+of\s+(" + _NUMBER + ")", r"(\1/100*\2)"),
    (r"(" + _NUMBER + r")\s+squared\b", r"(\1**2)"),
    (r"(" + _NUMBER + r")\s+cubed\b", r"(\1**3)"),
    (r"\bto the power of\b", "**"),
    (r"\bmultiplied by\b|\btimes\b|\bx\b", "*"),
    (r"\bdivided by\b|\bover\b", "/"),
    (r"\bplus\b|\badded to\b", "+"),
    (r"\bminus\b|\bless\b", "-"),
    (r"\bmodulo\b|\bmod\b", "%"),
]
_EXPRESSION = re.compile(r"(?<![-(])(?:sqrt\()?[-(]*(?<![\d.,])\d[\d.,]*(?:\s*(?:\*\*|[-+*/%^])\s*[-(]*(?:sqrt\()?\d[\d.,]*\)*)+\)*")
_FUNCTION_CALL = re.compile(r"sqrt\(\d[\d.]*\)")
_TIME = re.compile(r"\b(what(?:'s|s| is)? the (?:time|date)|what time|current time|time is it|today'?s date|"
                   r"what day is it|what(?:'s| is) the day)\b", re.I)
_DAY_QUESTION = re.compile(r"\b(?:what|which) (?:day|date)\b|\bday of the week\b|\bweekday\b|"
                           r"\bwhat(?:'s| is| will be) the date\b", re.I)
_DAY_OFFSETS = ((re.compile(r"\bday after tomorrow\b", re.I), 2), (re.compile(r"\bday before yesterday\b", re.I), -2),
                (re.compile(r"\btomorrow\b", re.I), 1), (re.compile(r"\byesterday\b", re.I), -1))
_DAYS_AWAY = re.compile(r"\bin (\d+) days\b|\b(\d+) days from (?:now|today)\b|\b(\d+) days (ago)\b", re.I)
_CONVERSION = re.compile(
    r"(" + _NUMBER + r")\s*([a-zA-Z°/²³]+(?: [a-zA-Z]+)?)\s+(?:to|in|into|in to|as)\s+([a-zA-Z°/²³]+)", re.I)
_HOW_MANY = re.compile(r"how many ([a-zA-Z°/²³]+) (?:is|are|in|are in|are there in|make) (" + _NUMBER + r"|an?)\s*"
                       r"([a-zA-Z°/²³]+)", re.I)
_CODE = re.compile(r"\b(?:run|execute|evaluate)\b.*?```(?:python|py)?[ \t]*\n(.*?)```", re.I | re.S)
_REMEMBER = re.compile(r"^\s*(?:(?:please|hey june|june|ok|okay),?\s+)?(?:remember|note|make a note|save a note|"
                       r"keep in mind|don't forget|do not forget|write down)(?: that|:)?\s+(.+)", re.I | re.S)
_RECALL = re.compile(r"\b(?:what (?:did|do) (?:i|you) (?:ask you to )?remember|recall|my notes?|"
                     r"what notes (?:do|did) (?:i|you) (?:have|keep|save)|what notes)\b"
                     r"(?:.*?\babout\s+(.+?))?[?.!]*$", re.I)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget(?: the note| my note| notes?)?(?: about| that)?\s+(.+?)[.!]*$", re.I)
_TIMEZONE = re.compile(r"\b(?:my time ?zone is|set my time ?zone to|change my time ?zone to|i live in|i'm in|i am in|"
                       r"i'm based in|i(?:'ve| have)? (?:just |recently )?moved to|use)\s+(?:the\s+)?"
                       r"([A-Za-z][\w/ _-]*?)(?:\s+time)?(?:,?\s+(?:for me|now|these days|from now on|by the way))*"
                       r"[.!?,]*$", re.I)
_REMINDER_WORDS = r"(?:reminders?|timers?|alarms?)"
_CANCEL_REMINDER = re.compile(r"\b(?:cancel|delete|remove|clear|stop|drop|turn off|get rid of)\s+(?:(all)\s+(?:of\s+)?)?"
                              r"(?:my\s+|the\s+|that\s+|this\s+|those\s+)?(.*?)\s*" + _REMINDER_WORDS +
                              r"\b(?:\s+(?:about|for|to|of|that|called)\s+(.+?))?[.!?]*$", re.I)
_LIST_REMINDERS = re.compile(r"\b(?:what|which|list|show|read|tell me|any|do i have|how many)\b.*\b" +
                             _REMINDER_WORDS + r"\b", re.I)
_SEARCH = re.compile(r"\b(?:did (?:i|we) (?:talk|speak|say|mention)|what did (?:i|we) (?:say|talk about))\b"
                     r"(?:.*?\babout\s+(.+?))?[?.!]*$", re.I)


@dataclass(frozen=True)
class Intent:
    reason: str
    steps: tuple[Step, ...]


def arithmetic_expression(text: str) -> str | None:
    spoken = text.lower()
    for pattern, replacement in _SPOKEN_OPERATORS:
        spoken = re.sub(pattern, replacement, spoken)
    match = _EXPRESSION.search(spoken.replace("^", "**")) or _FUNCTION_CALL.search(spoken)
    return match[0].replace(",", "") if match else None


def _unit(text: str) -> str | None:
    try:
        canonical(text)
        return text
    except ToolError:
        return None


# Words that make a request more than one exact pattern can serve: a second step, or a place named earlier.
_MORE_THAN_ONE_STEP = re.compile(r"\b(?:then|after that|afterwards|and (?:also|double|halve|triple|add|subtract|"
                                 r"multiply|divide|convert|tell|how)|there)\b", re.I)


def _zone(text: str) -> str | None:
    try:
        return zone(text).key
    except ToolError:
        return None


def _reminder_intent(text: str) -> Intent | None:
    if match := _CANCEL_REMINDER.search(text):
        query = " ".join(part for part in (match[2], match[3]) if part and part.lower() not in ("all", "all my"))
        arguments = {"query": query.strip()} if query.strip() else {}
        if match[1]:
            arguments["all"] = True
        return Intent("asks to cancel a reminder", (Step("s1", "cancel_reminder", arguments),))
    if (request := read_reminder(text)) is not None:
        arguments = {key: value for key, value in (("when", request.when), ("text", request.what)) if value}
        return Intent("asks for a timer" if request.timer else "asks to be reminded",
                      (Step("s1", "set_reminder", {**arguments, **({"timer": True} if request.timer else {})}),))
    if _LIST_REMINDERS.search(text):
        return Intent("asks which reminders are set", (Step("s1", "list_reminders", {}),))
    return None


def _days_from_now(text: str) -> int | None:
    """How many days away the day a date question asks about is ("the day after tomorrow": 2), if it names one."""
    if not _DAY_QUESTION.search(text):
        return None
    for pattern, days in _DAY_OFFSETS:
        if pattern.search(text):
            return days
    if match := _DAYS_AWAY.search(text):
        return -int(match[3]) if match[4] else int(match[1] or match[2])
    return None


def detect(text: str) -> Intent | None:
    """The first intent that matches, with the steps that answer it."""
    if match := _CODE.search(text):
        return Intent("asks to run a Python program", (Step("s1", "run_python", {"code": match[1]}),))
    if reminder := _reminder_intent(text):
        return reminder
    if match := _REMEMBER.match(text):
        return Intent("asks June to remember something",
                      (Step("s1", "remember_note", {"text": match[1].strip().rstrip(".")}),))
    if (match := _FORGET.match(text)) and content_words(match[1]):
        return Intent("asks June to forget a note (June names it and waits for a yes)",
                      (Step("s1", "forget_notes", {"query": match[1].strip()}),))
    if (match := _TIMEZONE.search(text)) and _zone(match[1]):
        return Intent("says which time zone the user is in", (Step("s1", "set_timezone", {"timezone": match[1]}),))
    if match := _RECALL.search(text):
        query = (match[1] or "").strip()
        return Intent("asks for saved notes", (Step("s1", "recall_notes", {"query": query} if query else {}),))
    if (match := _SEARCH.search(text)) and match[1]:
        return Intent("asks about earlier conversations",
                      (Step("s1", "search_conversations", {"query": match[1].strip()}),))
    if _MORE_THAN_ONE_STEP.search(text):
        return None
    text = alpha2digit(text, "en")  # "seven times eight" is as exact as "7 times 8"
    for pattern, order in ((_CONVERSION, (1, 2, 3)), (_HOW_MANY, (2, 3, 1))):
        if (match := pattern.search(text)) and _unit(match[order[1]]) and _unit(match[order[2]]):
            amount = match[order[0]].replace(",", "")
            value = 1.0 if amount.lower() in ("a", "an") else float(amount)
            return Intent("asks for a unit conversion", (Step("s1", "convert_units", {
                "value": value, "from_unit": match[order[1]], "to_unit": match[order[2]]}),))
    if (days := _days_from_now(text)) is not None:
        return Intent("asks for the date or weekday some days away",
                      (Step("s1", "current_time", {"days_from_now": days}),))
    if _TIME.search(text):
        zones = zones_named_in(text)
        steps = [Step(f"s{n}", "current_time", {"timezone": key}) for n, key in enumerate(zones, 1)]
        return Intent("asks for the time or date", tuple(steps) or (Step("s1", "current_time", {}),))
    if expression := arithmetic_expression(text):
        return Intent(f"contains arithmetic ({expression})", (Step("s1", "calculator", {"expression": expression}),))
    return None
