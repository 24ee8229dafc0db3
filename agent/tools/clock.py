"""The current date and time anywhere, and time-zone conversion, from the IANA database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from agent.tools.base import Tool, ToolError, object_schema

_ALIASES = {"utc": "UTC", "gmt": "UTC", "london": "Europe/London", "paris": "Europe/Paris", "berlin": "Europe/Berlin",
            "new york": "America/New_York", "tokyo": "Asia/Tokyo", "sydney": "Australia/Sydney",
            "los angeles": "America/Los_Angeles", "san francisco": "America/Los_Angeles",
            "chicago": "America/Chicago", "moscow": "Europe/Moscow", "india": "Asia/Kolkata",
            "delhi": "Asia/Kolkata", "beijing": "Asia/Shanghai", "lisbon": "Europe/Lisbon", "madrid": "Europe/Madrid",
            "rome": "Europe/Rome", "dubai": "Asia/Dubai", "singapore": "Asia/Singapore", "toronto": "America/Toronto"}


def zone(name: str) -> ZoneInfo:
    key = _ALIASES.get(name.strip().lower(), name.strip())
    if not key:
        raise ToolError("a time zone is required")
    if key not in available_timezones() and key != "UTC":
        matches = [z for z in available_timezones() if z.lower().endswith("/" + key.lower().replace(" ", "_"))]
        if len(matches) != 1:
            raise ToolError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'")
        key = matches[0]
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {name!r}") from None


def _now_in(arguments: dict[str, Any], now: Callable[[], datetime]) -> str:
    tz = zone(arguments.get("timezone", "UTC"))
    moment = now().astimezone(tz)
    return moment.strftime(f"%A %d %B %Y, %H:%M ({tz.key}, UTC%z)")


def _convert(arguments: dict[str, Any]) -> str:
    source, target = zone(arguments["from_timezone"]), zone(arguments["to_timezone"])
    try:
        moment = datetime.fromisoformat(arguments["time"])
    except ValueError:
        raise ToolError(f"{arguments['time']!r} is not an ISO time such as 2026-11-24T15:30") from None
    converted = moment.replace(tzinfo=source).astimezone(target)
    return converted.strftime(f"%A %d %B %Y, %H:%M ({target.key})")


def make_clock_tools(now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> list[Tool]:
    """`now` is injectable so tests can pin the moment."""
    current_time = Tool(
        name="current_time",
        description="The current date and time in a time zone (IANA name or a major city; default UTC).",
        parameters=object_schema({"timezone": {"type": "string"}}, []),
        run=lambda arguments, _: _now_in(arguments, now),
    )
    convert_time = Tool(
        name="convert_time",
        description="Convert an ISO date-time from one time zone to another.",
        parameters=object_schema({"time": {"type": "string"}, "from_timezone": {"type": "string"},
                                  "to_timezone": {"type": "string"}}, ["time", "from_timezone", "to_timezone"]),
        run=lambda arguments, _: _convert(arguments),
    )
    return [current_time, convert_time]

