"""Time zones by name (IANA keys, and the names people say: "Tokyo", "pacific", "CET") and repeating times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import rrulestr

ALIASES = {"utc": "UTC", "gmt": "UTC", "london": "Europe/London", "paris": "Europe/Paris", "berlin": "Europe/Berlin",
           "new york": "America/New_York", "tokyo": "Asia/Tokyo", "sydney": "Australia/Sydney",
           "los angeles": "America/Los_Angeles", "san francisco": "America/Los_Angeles",
           "chicago": "America/Chicago", "moscow": "Europe/Moscow", "india": "Asia/Kolkata",
           "delhi": "Asia/Kolkata", "beijing": "Asia/Shanghai", "lisbon": "Europe/Lisbon", "madrid": "Europe/Madrid",
           "rome": "Europe/Rome", "dubai": "Asia/Dubai", "singapore": "Asia/Singapore", "toronto": "America/Toronto",
           "seattle": "America/Los_Angeles", "boston": "America/New_York", "miami": "America/New_York",
           "washington": "America/New_York", "mumbai": "Asia/Kolkata", "bangalore": "Asia/Kolkata",
           "pacific": "America/Los_Angeles", "eastern": "America/New_York", "central": "America/Chicago",
           "mountain": "America/Denver", "pst": "America/Los_Angeles", "est": "America/New_York",
           "cet": "Europe/Paris", "hawaii": "Pacific/Honolulu", "california": "America/Los_Angeles"}
ZONE_SUFFIX = re.compile(r"\s+(?:standard\s+)?time(?:\s*zone)?$", re.I)


class UnknownZone(ValueError):
    """No time zone has that name."""


def zone(name: str) -> ZoneInfo:
    name = ZONE_SUFFIX.sub("", name.strip())
    key = ALIASES.get(name.strip().lower(), name.strip())
    if not key:
        raise UnknownZone("a time zone is required")
    if key not in available_timezones() and key != "UTC":
        matches = [z for z in available_timezones() if z.lower().endswith("/" + key.lower().replace(" ", "_"))]
        if len(matches) != 1:
            raise UnknownZone(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'")
        key = matches[0]
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(f"unknown time zone {name!r}") from None


def next_after(recurrence: str, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first occurrence strictly after `after` (aware), as aware UTC; local wall-clock times in tz (DST-correct:
    07:30 stays 07:30 local across a DST change). A rule with a UTC DTSTART steps in exact UTC time."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    start = after.astimezone(tz).replace(tzinfo=None, microsecond=0) - timedelta(days=1)
    for occurrence in rrulestr(recurrence, dtstart=start):
        moment = occurrence if occurrence.tzinfo else occurrence.replace(tzinfo=tz)
        if moment > after:
            return moment.astimezone(UTC)
    return None
