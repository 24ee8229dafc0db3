"""Reminders and timers as tools: set, list and cancel, in the user's own time zone.

A reminder without a time, or without what to be reminded of, is not guessed: June asks back, and the
user's answer completes the request (the question is kept per conversation, see agent.confirmations).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from agent.confirmations import PendingActions, ask_back
from agent.notes import content_words
from agent.reminders import ReminderStore
from agent.schedule import ScheduleError, parse_when, read_reminder
from agent.tools.base import NothingFound, Recognised, Rule, Tool, ToolContext, object_schema
from agent.tools.clock import zone
from agent.tools.signals import words
from common.types import Reminder

REMINDER_SIGNALS = words(r"remind\w*|timers?|alarms?|wake me")

MAX_LISTED = 10

_REMINDER_WORDS = r"(?:reminders?|timers?|alarms?)"
_CANCEL_REMINDER = re.compile(r"\b(?:cancel|delete|remove|clear|stop|drop|turn off|get rid of)\s+(?:(all)\s+(?:of\s+)?)?"
                              r"(?:my\s+|the\s+|that\s+|this\s+|those\s+)?(.*?)\s*" + _REMINDER_WORDS +
                              r"\b(?:\s+(?:about|for|to|of|that|called)\s+(.+?))?[.!?]*$", re.I)
_LIST_REMINDERS = re.compile(r"\b(?:what|which|list|show|read|tell me|any|do i have|how many)\b.*\b" +
                             _REMINDER_WORDS + r"\b", re.I)


def _recognise_cancel(text: str) -> Recognised | None:
    """"cancel my pizza timer", "delete all reminders about the dentist": the words that name them, or all."""
    if not (match := _CANCEL_REMINDER.search(text)):
        return None
    query = " ".join(part for part in (match[2], match[3]) if part and part.lower() not in ("all", "all my")).strip()
    arguments: dict[str, Any] = {"query": query} if query else {}
    if match[1]:
        arguments["all"] = True
    return Recognised("asks to cancel a reminder", (arguments,))


def _recognise_set(text: str) -> Recognised | None:
    if (request := read_reminder(text)) is None:
        return None
    arguments: dict[str, Any] = {key: value for key, value in (("when", request.when), ("text", request.what)) if value}
    if request.timer:
        arguments["timer"] = True
    return Recognised("asks for a timer" if request.timer else "asks to be reminded", (arguments,))


def _recognise_list(text: str) -> Recognised | None:
    if _LIST_REMINDERS.search(text):
        return Recognised("asks which reminders are set", ({},))
    return None


def local_moment(unix_time: float, tz: ZoneInfo, now: datetime) -> str:
    """"today at 14:25", "tomorrow at 08:00" or "Friday 5 December at 15:00", in the user's zone."""
    moment, today = datetime.fromtimestamp(unix_time, timezone.utc).astimezone(tz), now.astimezone(tz).date()
    days = (moment.date() - today).days
    day = {0: "today", 1: "tomorrow"}.get(days) or f"{moment:%A} {moment.day} {moment:%B}"
    return f"{day} at {moment:%H:%M}"


def describe(reminder: Reminder, now: datetime) -> str:
    tz = zone(reminder.timezone)
    repeats = f" ({reminder.description})" if reminder.recurrence else ""
    what = "timer" if reminder.timer else reminder.text
    return f"{what}: {local_moment(reminder.due_at, tz, now)}{repeats}"


def make_reminder_tools(store: ReminderStore, pending: PendingActions,
                        now: Callable[[], datetime]) -> list[Tool]:
    def set_reminder(arguments: dict[str, Any], context: ToolContext) -> str:
        what = (arguments.get("text") or "").strip().rstrip(".!")
        when = (arguments.get("when") or "").strip()
        timer = bool(arguments.get("timer"))
        about = f" to {what}" if what else ""
        if not when:
            raise ask_back(pending, context.user_id, context.conversation_id, f"When should I remind you{about}?",
                           f"remind me {{answer}}{about}")
        try:
            schedule = parse_when(when, now(), zone(context.timezone))
        except ScheduleError as error:
            raise ask_back(pending, context.user_id, context.conversation_id,
                           f"{error} When should I remind you{about}?", f"remind me {{answer}}{about}") from None
        if not what and not timer:
            raise ask_back(pending, context.user_id, context.conversation_id, "What should I remind you about?",
                           f"remind me {when} to {{answer}}")
        text = what or f"Your timer ({schedule.description.removeprefix('in ')}) is done."
        store.add(context.user_id, context.conversation_id, context.platform, context.chat_id, text,
                  schedule.due.timestamp(), schedule.recurrence, context.timezone, schedule.description, timer)
        if timer and not what:
            return f"Timer set: it goes off {schedule.description}."
        return f"OK, I'll remind you {schedule.description}: {text}."

    def list_reminders(arguments: dict[str, Any], context: ToolContext) -> str:
        found = store.upcoming(context.user_id)
        if not found:
            return NothingFound("You have no reminders or timers set.")
        moment = now()
        lines = [f"{i}. {describe(r, moment)}" for i, r in enumerate(found[:MAX_LISTED], 1)]
        more = f"\n…and {len(found) - MAX_LISTED} more." if len(found) > MAX_LISTED else ""
        return f"You have {len(found)} reminder{'s' if len(found) != 1 else ''}:\n" + "\n".join(lines) + more

    def cancel_reminder(arguments: dict[str, Any], context: ToolContext) -> str:
        query = (arguments.get("query") or "").strip()
        found = store.upcoming(context.user_id, " ".join(content_words(query)))
        if not found:
            return NothingFound(f"No reminder matches {query!r}; nothing was cancelled." if query
                                else "You have no reminders.")
        if len(found) > 1 and not arguments.get("all"):
            moment = now()
            options = "; ".join(f"{i}) {describe(r, moment)}" for i, r in enumerate(found[:MAX_LISTED], 1))
            raise ask_back(pending, context.user_id, context.conversation_id,
                           f"Which one should I cancel: {options}? Say its words, or all.",
                           "cancel the reminder {answer}")
        store.cancel(context.user_id, [r.id for r in found])
        if len(found) == 1:
            return f"Cancelled the reminder {describe(found[0], now())}."
        return f"Cancelled {len(found)} reminders."

    text = {"type": "string", "minLength": 1, "maxLength": 500}
    return [
        Tool("set_reminder", "Remind the user at a time ('in 20 minutes', 'tomorrow at 8', 'every weekday at 7:30'), "
             "or set a timer.",
             object_schema({"when": {"type": "string", "maxLength": 200}, "text": text, "timer": {"type": "boolean"}},
                           []), set_reminder,
             signals=REMINDER_SIGNALS, rule=Rule(_recognise_set, "command", rank=30), changes_state=True),
        Tool("list_reminders", "List the user's reminders and timers.", object_schema({}, []), list_reminders,
             signals=REMINDER_SIGNALS, rule=Rule(_recognise_list, "command", rank=40)),
        Tool("cancel_reminder", "Cancel the user's reminders matching `query` (or `all`).",
             object_schema({"query": {"type": "string", "maxLength": 200}, "all": {"type": "boolean"}}, []),
             cancel_reminder, signals=REMINDER_SIGNALS, rule=Rule(_recognise_cancel, "command", rank=20),
             changes_state=True),
    ]
