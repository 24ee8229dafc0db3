"""Spoken reminders and timers: find the request in what the user said (`read_reminder`), turn its time phrase into
a due time and an RFC 5545 recurrence (`parse_when`); `common.timezones.next_after` steps a recurrence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from text_to_num import alpha2digit

from common.timezones import next_after


class ScheduleError(ValueError):
    """The time could not be understood; the message is shown to the user."""


@dataclass(frozen=True)
class When:
    due: datetime  # aware, UTC: the first time it fires
    recurrence: str | None  # None for a one-off; else an RRULE body (with a UTC DTSTART for hourly/minutely rules)
    description: str  # "in 20 minutes", "tomorrow at 08:00", "every weekday at 07:30"


@dataclass(frozen=True)
class ReminderRequest:
    when: str | None  # the time phrase, lower case ("in 20 minutes"); None when the text names no time
    what: str | None  # what to remind about ("take the pizza out"); None when not said
    timer: bool


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
PART_TIMES = {"morning": time(9), "afternoon": time(15), "evening": time(18), "night": time(21)}
DEFAULT_TIME = time(9)
MAX_AHEAD = timedelta(days=366)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SMALL_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2}

# Pattern pieces. Named groups are read by `parse_when`; `_bare` strips the names so pieces can be combined.
_NUM = r"(?:-?(?<![\d.])\d+(?:\.\d+)?|an?|one|two)"  # a number is read from its first digit, never mid-run
_UNIT = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|wks?)"
_DURATION_PART = (rf"(?:(?P<half>half\s+an?)|(?P<num>{_NUM})(?P<and_half>\s+and\s+a\s+half)?)\s*-?\s*(?P<unit>{_UNIT})"
                  r"(?P<half_after>\s+and\s+a\s+half)?")
_WD = "(?:" + "|".join(WEEKDAYS) + ")"
_MONTH = "(?:" + "|".join(MONTHS) + ")"
_DAYSET = rf"{_WD}s?(?:(?:\s*,\s*|\s+(?:and|or|&)\s+|\s+){_WD}s?)*"
_PLURAL_DAYS = rf"{_WD}s(?:(?:\s*,\s*|\s+(?:and|or|&)\s+|\s+){_WD}s)*"
_HOUR = r"(?:\d{1,2}|one|two)"
_TIME = (r"\b(?:(?:at\s+)?(?P<word>noon|midday|midnight)"
         rf"|(?:at\s+)?(?P<h1>{_HOUR})(?:[:.\s](?P<m1>\d{{2}}))?\s*(?P<ampm>[ap]m)"
         r"|(?:at\s+)?(?P<h2>\d{1,2})[:.](?P<m2>\d{2})"
         rf"|at\s+(?P<h3>{_HOUR})(?:\s(?P<m3>\d{{2}}))?)\b")
_DAY = (r"\b(?:(?P<rel>today|tonight|tomorrow|(?:the\s+)?day\s+after\s+tomorrow)"
        rf"|(?:on\s+)?(?:(?P<which>next|this|coming)\s+)?(?P<wd>{_WD})"
        rf"|(?:on\s+)?(?:the\s+)?(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon1>{_MONTH})"
        rf"|(?:on\s+)?(?P<mon2>{_MONTH})\s+(?:the\s+)?(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?"
        r"|(?:on\s+)?the\s+(?P<d3>\d{1,2}(?:st|nd|rd|th)|first|second|third)(?:\s+of\s+(?:the|this)\s+month)?)\b")
_PART = r"\b(?P<prefix>this\s+|in\s+the\s+|at\s+)?(?P<part>morning|afternoon|evening|night)\b"
_REPEAT = (r"\b(?:(?:every|each)\s+(?:(?P<unit>day|weekday|weekend|week|morning|afternoon|evening|night)\b"
           rf"|(?P<days>{_DAYSET}))|(?P<adverb>daily|everyday|weekly|nightly)|(?:on\s+)?(?P<plural>weekdays|weekends"
           rf"|{_PLURAL_DAYS}))\b")
_INTERVAL = (rf"(?:(?:every|each)\s+(?:(?P<n>{_NUM})\s+)?(?P<unit>minute|min|hour|hr)s?"
             r"|(?P<hourly>hourly)|(?:every|each)\s+(?P<half>half)\s+(?:an\s+)?hour)")


def _bare(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


_DURATION = rf"(?>{_bare(_DURATION_PART)})(?:\s*(?:,|and)?\s*(?>{_bare(_DURATION_PART)}))*+"  # no re-splitting: see _WHEN
_RELATIVE_RE = re.compile(rf"(?:(?:in|for|after)\s+)?(?P<duration>{_DURATION})(?:\s+from\s+now)?")
_DURATION_PART_RE = re.compile(_DURATION_PART)
_INTERVAL_RE = re.compile(_INTERVAL)
_REPEAT_RE = re.compile(_REPEAT)
_DAY_RE = re.compile(_DAY)
_PART_RE = re.compile(_PART)
_TIME_RE = re.compile(_TIME)
_FILLER = frozenset({"on", "at", "the", "and"})

# The grammar of a time phrase inside a sentence, for `read_reminder`.
_CHUNK = "|".join((rf"(?:in|after)\s+{_DURATION}(?:\s+from\s+now)?", rf"{_DURATION}\s+from\s+now", _bare(_INTERVAL),
                   _bare(_REPEAT), _bare(_DAY), r"(?:this|in\s+the|at)\s+(?:morning|afternoon|evening|night)",
                   _bare(_TIME)))
# Each chunk is atomic and their run possessive: a run that cannot be followed by what comes next is given up
# whole, not re-split (re-splitting "in 5 minutes in 5 minutes …" doubled the time with every repetition).
_WHEN = rf"\b(?>{_CHUNK})\b(?:\s*,?\s+\b(?>{_CHUNK}|morning|afternoon|evening|night)\b)*+"
_TEXT = re.IGNORECASE | re.DOTALL
_WHEN_START_RE = re.compile(_WHEN, _TEXT)
_WHEN_END_RE = re.compile(rf"(?:^|\s)({_WHEN})$", _TEXT)
_LEADING_RE = re.compile(r"^(?:(?:(?:hey|hi|ok|okay)[\s,]+)?june\b|please\b|(?:can|could|would|will)\s+you\b)[\s,.!:]*",
                         _TEXT)
_TRAILING_RE = re.compile(r"(?:[\s,]+please)?[\s?.!]*$", _TEXT)
_REMIND_RE = re.compile(rf"^(?:(?P<pre>{_WHEN})\s*,?\s+)?remind\s+me\b(?P<rest>.*)$", _TEXT)
_SET_REMINDER_RE = re.compile(r"^(?:set|create|add|make|schedule)\s+(?:me\s+|up\s+)?(?:a|an|one)\s+(?:new\s+)?"
                              rf"reminder\b(?:\s+for\s+(?P<duration>{_DURATION})\b(?:\s+from\s+now)?)?"
                              r"(?:\s+for\b)?(?P<rest>.*)$", _TEXT)
_TIMER_RE = re.compile(r"^(?:(?:set|start|create|make)\s+(?:me\s+|up\s+)?(?:a|an|one)\s+"
                       rf"(?:(?P<size>{_DURATION})\s+)?timer\b|timer(?=\s+(?:for|of)\s+{_DURATION}\b))"
                       rf"(?:\s+(?:for|of)\s+(?P<duration>{_DURATION})\b)?(?P<rest>.*)$", _TEXT)
_RECALL_RE = re.compile(r"^(?:what|who|where|when|why|how|which|whether|if)\b", _TEXT)
_WHAT_LEAD_RE = re.compile(r"^[\s,:;-]*(?:(?:to|that|about|of|for|called|named)\b)?\s*", _TEXT)


def read_reminder(text: str) -> ReminderRequest | None:
    """The reminder or timer the text asks to set; None when it asks for no reminder or timer."""
    text = _strip_politeness(alpha2digit(_ampm(text), "en"))
    if timer := _TIMER_RE.match(text):
        duration = timer["size"] or timer["duration"]
        return ReminderRequest(_tidy(f"in {duration}") if duration else None, _clean_what(timer["rest"]), True)
    if reminder := _SET_REMINDER_RE.match(text):
        lead = f"in {reminder['duration']}" if reminder["duration"] else None
        return _reminder(lead, reminder["rest"])
    if reminder := _REMIND_RE.match(text):
        return _reminder(reminder["pre"], reminder["rest"])
    return None


def _strip_politeness(text: str) -> str:
    text = text.strip()
    while (stripped := _LEADING_RE.sub("", text, count=1)) != text:
        text = stripped
    return _TRAILING_RE.sub("", text)


def _reminder(lead: str | None, rest: str) -> ReminderRequest | None:
    rest = rest.strip(" ,:")
    if lead is None and _RECALL_RE.match(rest):
        return None  # "remind me what we said": a question, not a reminder
    phrases = [lead] if lead else []
    if start := _WHEN_START_RE.match(rest):
        phrases.append(start[0])
        rest = rest[start.end():]
    if end := _WHEN_END_RE.search(rest):
        phrases.append(end[1])
        rest = rest[:end.start()]
    return ReminderRequest(_tidy(" ".join(phrases)) if phrases else None, _clean_what(rest), False)


def _tidy(phrase: str) -> str:
    """Lower case, digits for "one"/"two", and plural units after numbers ("a 5-minute timer" -> "in 5 minutes")."""
    phrase = re.sub(r"\b(?:one|two)\b", lambda word: str(SMALL_NUMBERS[word[0]]), phrase.lower())
    phrase = re.sub(r"(\d)\s*-\s*(?=[a-z])", r"\1 ", phrase)
    return re.sub(r"\b(?!1 )(\d+(?:\.\d+)?) (second|minute|hour|day|week)\b", r"\1 \2s", phrase)


def _clean_what(text: str) -> str | None:
    what = _WHAT_LEAD_RE.sub("", text, count=1).strip().rstrip(" ,.;:!?-")
    return what or None


def parse_when(phrase: str, now: datetime, tz: ZoneInfo) -> When:
    """`now` is aware (any zone); local times are in `tz`. Raises ScheduleError."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = _normalize(phrase)
    if not text:
        raise ScheduleError("I didn't catch a time for that.")
    if relative := _RELATIVE_RE.fullmatch(text):
        return _relative(relative["duration"], now)
    if interval := _INTERVAL_RE.fullmatch(text):
        return _interval(interval, now)
    return _calendar(text, phrase, now, tz)


def _ampm(text: str) -> str:
    return re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text, flags=re.IGNORECASE)


def _normalize(phrase: str) -> str:
    text = alpha2digit(_ampm(phrase), "en").lower()
    text = re.sub(r"\bo'?\s?clock\b", " ", text)
    text = re.sub(r"\b(?:one|two)\b", lambda word: str(SMALL_NUMBERS[word[0]]), text)
    return " ".join(re.sub(r"[?!;,]|\.(?!\d)", " ", text).split())


def _relative(duration: str, now: datetime) -> When:
    seconds = sum(_part_seconds(part) for part in _DURATION_PART_RE.finditer(duration))
    if seconds <= 0:
        raise ScheduleError("That time isn't in the future; tell me how long from now.")
    if seconds > MAX_AHEAD.total_seconds():
        raise ScheduleError("That's more than a year away; I can only set reminders up to a year ahead.")
    return When(now.astimezone(UTC) + timedelta(seconds=seconds), None, f"in {_describe_duration(round(seconds))}")


def _part_seconds(part: re.Match[str]) -> float:
    amount = 0.5 if part["half"] else _amount(part["num"])
    if part["and_half"] or part["half_after"]:
        amount += 0.5
    return amount * UNIT_SECONDS[part["unit"][0]]


def _amount(number: str) -> float:
    return SMALL_NUMBERS.get(number) or float(number)


def _describe_duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    named = [(days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")]
    return _join([f"{count} {unit}{'' if count == 1 else 's'}" for count, unit in named if count])


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _interval(interval: re.Match[str], now: datetime) -> When:
    if interval["half"]:
        count, unit = 30, "minute"
    else:
        count, unit = (1, "hour") if interval["hourly"] else (_amount(interval["n"] or "1"), interval["unit"])
        unit = "hour" if unit.startswith("h") else "minute"
    if count != int(count) or count < 1:
        raise ScheduleError("Tell me a whole number of minutes or hours between reminders.")
    if count * UNIT_SECONDS[unit[0]] > MAX_AHEAD.total_seconds():
        raise ScheduleError("That's more than a year between reminders.")
    step = timedelta(**{f"{unit}s": int(count)})
    due = (now.astimezone(UTC) + step).replace(microsecond=0)
    rule = f"DTSTART:{due:%Y%m%dT%H%M%SZ}\nRRULE:FREQ={unit.upper()}LY;INTERVAL={int(count)}"
    return When(due, rule, f"every {unit}" if count == 1 else f"every {int(count)} {unit}s")


def _take(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    """The first match of `pattern` in `text`, and the text without it."""
    match = pattern.search(text)
    return (match, f"{text[:match.start()]} {text[match.end():]}") if match else (None, text)


def _calendar(text: str, phrase: str, now: datetime, tz: ZoneInfo) -> When:
    repeat, text = _take(_REPEAT_RE, text)
    day, text = (None, text) if repeat else _take(_DAY_RE, text)
    part, text = _take(_PART_RE, text)
    clock, text = _take(_TIME_RE, text)
    if set(text.split()) - _FILLER or not (repeat or day or part or clock):
        raise ScheduleError(f"I couldn't tell when '{phrase.strip()}' is.")
    part_name = _part_name(repeat, day, part)
    at = _clock(clock, part_name) if clock else PART_TIMES.get(part_name or "", DEFAULT_TIME)
    if repeat:
        return _repeating(repeat, at if clock or part_name else None, now, tz)
    local_now = now.astimezone(tz)
    due = _first_day(day, at, bool(clock), local_now, explicit_today=bool(part and part["prefix"] == "this "))
    if due - local_now > MAX_AHEAD:
        raise ScheduleError("That's more than a year away; I can only set reminders up to a year ahead.")
    return When(due.astimezone(UTC), None, _describe_day(due, local_now))


def _part_name(repeat: re.Match[str] | None, day: re.Match[str] | None, part: re.Match[str] | None) -> str | None:
    if part:
        return part["part"]
    if repeat and repeat["unit"] in PART_TIMES:
        return repeat["unit"]
    if repeat and repeat["adverb"] == "nightly" or day and day["rel"] == "tonight":
        return "night"
    return None


def _clock(match: re.Match[str], part: str | None) -> time:
    if match["word"]:
        return time(0) if match["word"] == "midnight" else time(12)
    hour = int(match["h1"] or match["h2"] or match["h3"])
    minute = int(match["m1"] or match["m2"] or match["m3"] or 0)
    if match["ampm"]:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"{hour} {match['ampm']} isn't a time of day.")
        hour = hour % 12 + (12 if match["ampm"] == "pm" else 0)
    elif part in ("afternoon", "evening", "night") and 1 <= hour <= 11:
        hour += 12
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{hour}:{minute:02d} isn't a time of day.")
    return time(hour, minute)


def _first_day(day: re.Match[str] | None, at: time, timed: bool, local_now: datetime, explicit_today: bool) -> datetime:
    """The first local moment at `at` on the named day (or the next one that is still ahead)."""
    tz, today = local_now.tzinfo, local_now.date()

    def on(offset: int) -> datetime:
        return datetime.combine(today + timedelta(days=offset), at, tzinfo=tz)

    if day is None or day["rel"] in ("today", "tonight"):
        if on(0) > local_now:
            return on(0)
        if explicit_today or day is not None:
            raise ScheduleError(f"{at:%H:%M} today has already passed.")
        return on(1)
    if day["rel"]:
        return on(1 if day["rel"] == "tomorrow" else 2)
    if day["wd"]:
        ahead = (WEEKDAYS.index(day["wd"]) - today.weekday()) % 7
        if ahead == 0 and (not timed or day["which"] == "next" or on(0) <= local_now):
            ahead = 7
        return on(ahead)
    if day["d3"]:
        return _day_of_month(_ordinal(day["d3"]), at, local_now)
    month = MONTHS.index(day["mon1"] or day["mon2"]) + 1
    return _date_in_year(month, int(day["d1"] or day["d2"]), at, local_now)


def _ordinal(word: str) -> int:
    return {"first": 1, "second": 2, "third": 3}.get(word) or int(word[:-2])


def _day_of_month(number: int, at: time, local_now: datetime) -> datetime:
    for offset in range(13):
        year, month = divmod(local_now.month - 1 + offset, 12)
        try:
            candidate = datetime.combine(date(local_now.year + year, month + 1, number), at, tzinfo=local_now.tzinfo)
        except ValueError:
            continue
        if candidate > local_now:
            return candidate
    raise ScheduleError(f"There's no day {number} in a month.")


def _date_in_year(month: int, number: int, at: time, local_now: datetime) -> datetime:
    try:
        candidate = datetime.combine(date(local_now.year, month, number), at, tzinfo=local_now.tzinfo)
        return candidate if candidate > local_now else candidate.replace(year=local_now.year + 1)
    except ValueError:
        raise ScheduleError(f"There's no {number} {MONTHS[month - 1].title()}.") from None


def _describe_day(due: datetime, local_now: datetime) -> str:
    ahead = (due.date() - local_now.date()).days
    if ahead in (0, 1):
        day = ("today", "tomorrow")[ahead]
    else:
        day = f"{WEEKDAYS[due.weekday()].title()} {due.day} {MONTHS[due.month - 1].title()}"
        day += f" {due.year}" if due.year != local_now.year else ""
    return f"{day} at {due:%H:%M}"


def _repeating(repeat: re.Match[str], at: time | None, now: datetime, tz: ZoneInfo) -> When:
    local_now = now.astimezone(tz)
    weekly = (repeat["unit"] or repeat["adverb"]) in ("week", "weekly")
    days = [local_now.weekday()] if weekly else _repeat_days(repeat)
    if at is None:
        at = local_now.time().replace(second=0, microsecond=0) if weekly else DEFAULT_TIME
    clock = f"BYHOUR={at.hour};BYMINUTE={at.minute};BYSECOND=0"
    if len(days) == 7:
        rule, wording = f"FREQ=DAILY;{clock}", "every day"
    else:
        rule, wording = f"FREQ=WEEKLY;BYDAY={','.join(RRULE_DAYS[d] for d in days)};{clock}", _describe_days(days)
    due = next_after(rule, now, tz)
    assert due is not None  # an unbounded daily or weekly rule always has a next occurrence
    return When(due, rule, f"{wording} at {at:%H:%M}")


def _repeat_days(repeat: re.Match[str]) -> list[int]:
    words = repeat["days"] or repeat["plural"] or repeat["unit"] or repeat["adverb"]
    if words.startswith("weekday"):
        return [0, 1, 2, 3, 4]
    if words.startswith("weekend"):
        return [5, 6]
    named = sorted({WEEKDAYS.index(name) for name in re.findall(_WD, words)})
    return named or list(range(7))


def _describe_days(days: list[int]) -> str:
    if days == [0, 1, 2, 3, 4]:
        return "every weekday"
    if days == [5, 6]:
        return "every weekend"
    return "every " + _join([WEEKDAYS[d].title() for d in days])

