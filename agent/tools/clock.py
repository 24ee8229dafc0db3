"""The current date and time anywhere, and time-zone conversion, from the IANA database."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from agent.preferences import UserPreferences
from agent.tools.base import Recognised, Rule, Tool, ToolContext, ToolError, accepts, object_schema
from agent.tools.signals import words
from common import timezones

TIMEZONE_PREFERENCE = "timezone"

CLOCK_SIGNALS = words(r"time|times|clock|date|dates|weekday|day of the week|what day|which day|o'clock|"
                      r"\d{1,2}(?::\d\d)?\s*[ap]\.?m\.?|time ?zones?|utc|gmt|what year is it|"
                      r"(?:days?|weeks?|months?) (?:until|till|from now|ago|since)")


def zone(name: str) -> ZoneInfo:
    try:
        return timezones.zone(name)
    except timezones.UnknownZone as error:
        raise ToolError(str(error)) from None


_NAMED_ZONE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, timezones.ALIASES), key=len, reverse=True)) + r")\b",
                         re.I)
_CAPITALISED_PLACE = re.compile(r"\bin ([A-Z][\w/]*(?:[ _][A-Z][\w]*)*)")


def zones_named_in(text: str) -> list[str]:
    """The time zones a request names, in the order it names them: places the clock knows by name ("india",
    "Tokyo") and capitalised places after "in" that are zones ("in Lagos")."""
    found: list[tuple[int, str]] = [(m.start(), zone(m[1]).key) for m in _NAMED_ZONE.finditer(text)]
    for match in _CAPITALISED_PLACE.finditer(text):
        try:
            found.append((match.start(1), zone(match[1]).key))
        except ToolError:
            continue
    return list(dict.fromkeys(key for _, key in sorted(found)))


_THERE = re.compile(r"\bthere\b", re.I)


def placed(request: str, earlier: list[str]) -> str:
    """The request with "there" read as the one place the conversation last named ("What's the capital of
    Japan?" "Tokyo." "And what time is it there?": "… in Asia/Tokyo?"), for the exact patterns; as it is when
    `earlier` (the newest first) names no place or several at once."""
    if not _THERE.search(request):
        return request
    for text in earlier:
        if zones := zones_named_in(text):
            return _THERE.sub(f"in {zones[0]}", request) if len(zones) == 1 else request
    return request


_TIME = re.compile(r"\b(what(?:'s|s| is)? the (?:time|date)|what time|current time|time is it|today'?s date|"
                   r"what day(?: of the week)? is it|what(?:'s| is) the day)\b", re.I)
_DAY_QUESTION = re.compile(r"\b(?:what|which) (?:day|date)\b|\bday of the week\b|\bweekday\b|"
                           r"\bwhat(?:'s| is| will be) the date\b", re.I)
_DAY_OFFSETS = ((re.compile(r"\bday after tomorrow\b", re.I), 2), (re.compile(r"\bday before yesterday\b", re.I), -2),
                (re.compile(r"\btomorrow\b", re.I), 1), (re.compile(r"\byesterday\b", re.I), -1))
_DAYS_AWAY = re.compile(r"\bin (\d+) days\b|\b(\d+) days from (?:now|today)\b|\b(\d+) days (ago)\b", re.I)


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


def _recognise_time(text: str) -> Recognised | None:
    """A date some days away, or the time now: in the user's zone, or in each place the request names."""
    if (days := _days_from_now(text)) is not None:
        return Recognised("asks for the date or weekday some days away", ({"days_from_now": days},))
    if _TIME.search(text):
        calls = tuple({"timezone": key} for key in zones_named_in(text))
        return Recognised("asks for the time or date", calls or ({},))
    return None


_TIMEZONE = re.compile(r"\b(?:my time ?zone is|set my time ?zone to|change my time ?zone to|i live in|i'm in|i am in|"
                       r"i'm based in|i(?:'ve| have)? (?:just |recently )?moved to|use)\s+(?:the\s+)?"
                       r"([A-Za-z][\w/ _-]*?)(?:\s+time)?(?:,?\s+(?:for me|now|these days|from now on|by the way))*"
                       r"[.!?,]*$", re.I)


def _recognise_own_zone(text: str) -> Recognised | None:
    """"I live in Lisbon", "set my time zone to UTC": a place the clock knows as a zone."""
    if (match := _TIMEZONE.search(text)) and accepts(zone, match[1]):
        return Recognised("says which time zone the user is in", ({"timezone": match[1]},))
    return None


def describe_moment(moment: datetime, tz: ZoneInfo) -> str:
    """Both clocks, so a model that words the answer cannot turn 04:02 into "4:02 PM"."""
    local = moment.astimezone(tz)
    twelve_hour = local.strftime("%I:%M %p").lstrip("0")
    return local.strftime(f"%A %d %B %Y, %H:%M ({twelve_hour}, {tz.key}, UTC%z)")


def _now_in(arguments: dict[str, Any], context: ToolContext, now: Callable[[], datetime]) -> str:
    """The moment now, or `days_from_now` days away ("the day after tomorrow" is 2): the date and weekday then."""
    tz = zone(arguments.get("timezone") or context.timezone)
    days = arguments.get("days_from_now", 0)
    if not days:
        return describe_moment(now(), tz)
    then = now().astimezone(tz) + timedelta(days=days)
    span = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    said = f"{span} from now it will be" if days > 0 else f"{span} ago it was"
    return then.strftime(f"{said} %A %d %B %Y ({tz.key})")


_MOMENT = re.compile(r"^(\w+) 0?(\d+) (\w+) \d{4}, \d\d:\d\d \(([^,]+), ([^,]+), UTC[+-]\d{4}\)$")


def _said_time(arguments: dict[str, Any], result: str) -> str:
    """"It is 8:05 AM on Monday 7 December (Asia/Tokyo)": the way a person says it, from `describe_moment`."""
    if arguments.get("days_from_now") or not (match := _MOMENT.match(result)):
        return result
    weekday, day, month, clock, tz = match.groups()
    return f"It is {clock} on {weekday} {day} {month} ({tz})"


def _convert(arguments: dict[str, Any]) -> str:
    source, target = zone(arguments["from_timezone"]), zone(arguments["to_timezone"])
    try:
        moment = datetime.fromisoformat(arguments["time"])
    except ValueError:
        raise ToolError(f"{arguments['time']!r} is not an ISO time such as 2026-11-24T15:30") from None
    converted = moment.replace(tzinfo=source).astimezone(target)
    return converted.strftime(f"%A %d %B %Y, %H:%M ({target.key})")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def make_clock_tools(preferences: UserPreferences | None = None, now: Callable[[], datetime] = utc_now) -> list[Tool]:
    """`now` is injectable so tests can pin the moment; `set_timezone` needs somewhere to keep the choice."""
    current_time = Tool(
        name="current_time",
        description="The current date and time, in the user's own time zone unless another place or IANA zone "
                    "is named; with days_from_now, the date and weekday that many days away (2: the day after "
                    "tomorrow, -1: yesterday).",
        parameters=object_schema({"timezone": {"type": "string"},
                                  "days_from_now": {"type": "integer", "minimum": -3660, "maximum": 3660}}, []),
        run=lambda arguments, context: _now_in(arguments, context, now),
        signals=CLOCK_SIGNALS,
        rule=Rule(_recognise_time, "quantity", rank=20),
        say=_said_time,
        answers_questions=True,
    )
    convert_time = Tool(
        name="convert_time",
        description="Convert an ISO date-time from one time zone to another.",
        parameters=object_schema({"time": {"type": "string"}, "from_timezone": {"type": "string"},
                                  "to_timezone": {"type": "string"}}, ["time", "from_timezone", "to_timezone"]),
        run=lambda arguments, _: _convert(arguments),
        signals=CLOCK_SIGNALS,
        answers_questions=True,
    )
    tools = [current_time, convert_time]
    if preferences is not None:

        def set_timezone(arguments: dict[str, Any], context: ToolContext) -> str:
            tz = zone(arguments["timezone"])
            preferences.set(context.user_id, TIMEZONE_PREFERENCE, tz.key)
            return f"Your time zone is now {tz.key}; it is {describe_moment(now(), tz)}."

        tools.append(Tool(
            name="set_timezone",
            description="Set the user's own time zone, when they say where they live or which zone they are in.",
            parameters=object_schema({"timezone": {"type": "string", "minLength": 1}}, ["timezone"]),
            run=set_timezone,
            signals=words(r"time ?zones?|i live in|i(?:'m| am) (?:in|based in)|moved to"),
            rule=Rule(_recognise_own_zone, "command", rank=70),
            changes_state=True,
        ))
    return tools

