"""Spoken reminder and timer requests: finding them in text, their due times (local wall clock, DST-correct),
recurrences, and the errors the user hears. The fixed `NOW` is Tuesday 2026-12-01 14:00 in Paris."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.schedule import ReminderRequest, ScheduleError, When, next_after, parse_when, read_reminder

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=PARIS)


def local(when: When, tz: ZoneInfo = PARIS) -> str:
    return when.due.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(("text", "when", "what"), [
    ("Remind me in 20 minutes to take the pizza out", "in 20 minutes", "take the pizza out"),
    ("Remind me to take the pizza out in twenty minutes.", "in 20 minutes", "take the pizza out"),
    ("remind me tomorrow at 8 to call mom", "tomorrow at 8", "call mom"),
    ("remind me to call mom tomorrow at 8am", "tomorrow at 8am", "call mom"),
    ("remind me at 8 tomorrow to call mom", "at 8 tomorrow", "call mom"),
    ("Remind me every weekday at 7:30 to take my pills", "every weekday at 7:30", "take my pills"),
    ("remind me every day at 9 pm to water the plants", "every day at 9 pm", "water the plants"),
    ("remind me every Monday at 9 about the team meeting", "every monday at 9", "the team meeting"),
    ("remind me tomorrow morning that the plumber is coming", "tomorrow morning", "the plumber is coming"),
    ("In 10 minutes remind me to check the oven", "in 10 minutes", "check the oven"),
    ("In 10 minutes, remind me to check the oven", "in 10 minutes", "check the oven"),
    ("Set a reminder for 6 pm to go for a run", "6 pm", "go for a run"),
    ("set a reminder for tomorrow at noon: dentist", "tomorrow at noon", "dentist"),
    ("set a reminder for 10 minutes", "in 10 minutes", None),
    # A one-off on the next 1st: recurring monthly reminders are not understood.
    ("create a reminder to pay rent on the first of the month", "on the first of the month", "pay rent"),
    ("Remind me to call Mom", None, "call Mom"),
    ("Remind me in an hour", "in an hour", None),
    ("remind me", None, None),
    ("hey, June: remind me in 5 minutes to stir", "in 5 minutes", "stir"),
    ("Hey June, could you remind me to go to bed at 10 tonight please?", "at 10 tonight", "go to bed"),
    ("june, please remind me at 7.30 p.m. to call Ana.", "at 7.30 pm", "call Ana"),
    ("can you remind me on Friday at 3pm to submit the report", "on friday at 3pm", "submit the report"),
    ("remind me to water the plants every monday and thursday at 6pm", "every monday and thursday at 6pm",
     "water the plants"),
    ("remind me mondays at 9 to call dad", "mondays at 9", "call dad"),
    ("remind me every two hours to drink water", "every 2 hours", "drink water"),
    ("remind me about the meeting in the morning", "in the morning", "the meeting"),
    ("remind me of my appointment on december 24 at 6pm", "on december 24 at 6pm", "my appointment"),
    ("remind me tomorrow to go to the gym at 6 pm", "tomorrow at 6 pm", "go to the gym"),
    ("remind me to say good morning", None, "say good morning"),  # "morning" alone names no time
])
def test_reminders(text: str, when: str | None, what: str | None) -> None:
    assert read_reminder(text) == ReminderRequest(when, what, timer=False)


@pytest.mark.parametrize(("text", "when", "what"), [
    ("Set a timer for 10 minutes", "in 10 minutes", None),
    ("set a 5 minute timer", "in 5 minutes", None),
    ("start a 1-minute timer", "in 1 minute", None),
    ("start a timer for one hour and 30 minutes", "in 1 hour and 30 minutes", None),
    ("timer for 90 seconds", "in 90 seconds", None),
    ("can you set a ten minute timer please", "in 10 minutes", None),
    ("set a timer for 12 minutes for the eggs", "in 12 minutes", "the eggs"),
    ("set a timer", None, None),
])
def test_timers(text: str, when: str | None, what: str | None) -> None:
    assert read_reminder(text) == ReminderRequest(when, what, timer=True)


@pytest.mark.parametrize("text", [
    "What is 2 plus 2?", "Do you remember my name?", "What reminders do I have?", "Cancel my reminder about the pizza",
    "List my timers", "Remember that my sister is called Ana", "What time is it in Tokyo?",
    "Tell me a story about a timer", "The timer is broken", "timer is broken", "", "please",
    # "Remind me what/when/who ..." asks to be told something, now.
    "remind me what we talked about yesterday", "remind me when the meeting is",
])
def test_not_reminders(text: str) -> None:
    assert read_reminder(text) is None


@pytest.mark.parametrize(("phrase", "due", "description"), [
    ("in 20 minutes", "2026-12-01 14:20:00", "in 20 minutes"),
    ("in 1 minute", "2026-12-01 14:01:00", "in 1 minute"),
    ("in 5 seconds", "2026-12-01 14:00:05", "in 5 seconds"),
    ("in 90 seconds", "2026-12-01 14:01:30", "in 1 minute and 30 seconds"),
    ("in an hour", "2026-12-01 15:00:00", "in 1 hour"),
    ("in half an hour", "2026-12-01 14:30:00", "in 30 minutes"),
    ("in 2 hours", "2026-12-01 16:00:00", "in 2 hours"),
    ("in 1 hour and 30 minutes", "2026-12-01 15:30:00", "in 1 hour and 30 minutes"),
    ("in 1 hour 30 minutes", "2026-12-01 15:30:00", "in 1 hour and 30 minutes"),
    ("in an hour and a half", "2026-12-01 15:30:00", "in 1 hour and 30 minutes"),
    ("in one and a half hours", "2026-12-01 15:30:00", "in 1 hour and 30 minutes"),
    ("in 3 days", "2026-12-04 14:00:00", "in 3 days"),
    ("in a week", "2026-12-08 14:00:00", "in 7 days"),
    ("in 2 hrs", "2026-12-01 16:00:00", "in 2 hours"),
    ("in 10 mins", "2026-12-01 14:10:00", "in 10 minutes"),
    ("for 10 minutes", "2026-12-01 14:10:00", "in 10 minutes"),
    ("10 minutes", "2026-12-01 14:10:00", "in 10 minutes"),
    ("in twenty minutes", "2026-12-01 14:20:00", "in 20 minutes"),
    ("30 minutes from now", "2026-12-01 14:30:00", "in 30 minutes"),
])
def test_relative(phrase: str, due: str, description: str) -> None:
    when = parse_when(phrase, NOW, PARIS)
    assert (local(when), when.recurrence, when.description) == (due, None, description)


def test_relative_is_exact() -> None:
    now = datetime(2027, 10, 31, 2, 30, 15, 123456, tzinfo=PARIS)  # 02:30 summer time, as the clocks go back
    assert parse_when("in an hour", now, PARIS).due == datetime(2027, 10, 31, 1, 30, 15, 123456, tzinfo=UTC)
    assert parse_when("every hour", now, PARIS).due == datetime(2027, 10, 31, 1, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(("phrase", "due", "description"), [
    ("at 8", "2026-12-02 08:00", "tomorrow at 08:00"),  # 08:00 has passed today
    ("at 8 pm", "2026-12-01 20:00", "today at 20:00"),
    ("at 8pm", "2026-12-01 20:00", "today at 20:00"),
    ("at 8 o'clock in the evening", "2026-12-01 20:00", "today at 20:00"),
    ("at 7:30", "2026-12-02 07:30", "tomorrow at 07:30"),
    ("at 19:45", "2026-12-01 19:45", "today at 19:45"),
    ("at 7.30 p.m.", "2026-12-01 19:30", "today at 19:30"),
    ("at eight thirty pm", "2026-12-01 20:30", "today at 20:30"),
    ("at 1 pm", "2026-12-02 13:00", "tomorrow at 13:00"),
    ("at noon", "2026-12-02 12:00", "tomorrow at 12:00"),
    ("at midnight", "2026-12-02 00:00", "tomorrow at 00:00"),
    ("tonight", "2026-12-01 21:00", "today at 21:00"),
    ("tonight at 9", "2026-12-01 21:00", "today at 21:00"),
    ("this evening", "2026-12-01 18:00", "today at 18:00"),
    ("this afternoon", "2026-12-01 15:00", "today at 15:00"),
    ("in the morning", "2026-12-02 09:00", "tomorrow at 09:00"),
    ("tomorrow", "2026-12-02 09:00", "tomorrow at 09:00"),
    ("tomorrow morning", "2026-12-02 09:00", "tomorrow at 09:00"),
    ("tomorrow evening at 7", "2026-12-02 19:00", "tomorrow at 19:00"),
    ("tomorrow at 8", "2026-12-02 08:00", "tomorrow at 08:00"),
    ("tomorrow at 8 pm", "2026-12-02 20:00", "tomorrow at 20:00"),
    ("at 8 tomorrow", "2026-12-02 08:00", "tomorrow at 08:00"),
    ("the day after tomorrow", "2026-12-03 09:00", "Thursday 3 December at 09:00"),
    ("on Friday", "2026-12-04 09:00", "Friday 4 December at 09:00"),
    ("on Friday at 3pm", "2026-12-04 15:00", "Friday 4 December at 15:00"),
    ("Friday at 3 pm", "2026-12-04 15:00", "Friday 4 December at 15:00"),
    # "Next Monday" is the coming Monday, as most people mean it.
    ("next Monday at 9", "2026-12-07 09:00", "Monday 7 December at 09:00"),
    ("on Tuesday", "2026-12-08 09:00", "Tuesday 8 December at 09:00"),  # today is Tuesday and no time is given
    ("on Tuesday at 5pm", "2026-12-01 17:00", "today at 17:00"),  # a time later today
    ("on Tuesday at 10", "2026-12-08 10:00", "Tuesday 8 December at 10:00"),  # 10:00 today has passed
    ("next Tuesday at 5pm", "2026-12-08 17:00", "Tuesday 8 December at 17:00"),
    ("on December 24 at 6pm", "2026-12-24 18:00", "Thursday 24 December at 18:00"),
    ("on the 24th of december", "2026-12-24 09:00", "Thursday 24 December at 09:00"),
    ("on january 5th", "2027-01-05 09:00", "Tuesday 5 January 2027 at 09:00"),
    ("on the 5th at 10", "2026-12-05 10:00", "Saturday 5 December at 10:00"),
    ("on the first", "2027-01-01 09:00", "Friday 1 January 2027 at 09:00"),
    ("on december 1 at 15:00", "2026-12-01 15:00", "today at 15:00"),
    ("on december 1 at 8", "2027-12-01 08:00", "Wednesday 1 December 2027 at 08:00"),  # passed this year
    ("6 pm", "2026-12-01 18:00", "today at 18:00"),
])
def test_absolute(phrase: str, due: str, description: str) -> None:
    when = parse_when(phrase, NOW, PARIS)
    assert (local(when)[:-3], when.recurrence, when.description) == (due, None, description)


@pytest.mark.parametrize(("phrase", "due", "rule", "description"), [
    ("every day at 8", "2026-12-02 08:00", "FREQ=DAILY;BYHOUR=8;BYMINUTE=0;BYSECOND=0", "every day at 08:00"),
    ("daily at 8am", "2026-12-02 08:00", "FREQ=DAILY;BYHOUR=8;BYMINUTE=0;BYSECOND=0", "every day at 08:00"),
    ("every morning at 7", "2026-12-02 07:00", "FREQ=DAILY;BYHOUR=7;BYMINUTE=0;BYSECOND=0", "every day at 07:00"),
    ("every evening", "2026-12-01 18:00", "FREQ=DAILY;BYHOUR=18;BYMINUTE=0;BYSECOND=0", "every day at 18:00"),
    ("every day", "2026-12-02 09:00", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "every day at 09:00"),
    ("every weekday at 7:30", "2026-12-02 07:30", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7;BYMINUTE=30;BYSECOND=0",
     "every weekday at 07:30"),
    ("every weekend at 10", "2026-12-05 10:00", "FREQ=WEEKLY;BYDAY=SA,SU;BYHOUR=10;BYMINUTE=0;BYSECOND=0",
     "every weekend at 10:00"),
    ("every Monday at 9", "2026-12-07 09:00", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
     "every Monday at 09:00"),
    ("every monday and thursday at 6pm", "2026-12-03 18:00", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=18;BYMINUTE=0;BYSECOND=0",
     "every Monday and Thursday at 18:00"),
    ("every monday, wednesday and friday", "2026-12-02 09:00",
     "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "every Monday, Wednesday and Friday at 09:00"),
    ("mondays at 9", "2026-12-07 09:00", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
     "every Monday at 09:00"),
    ("every Tuesday at 5pm", "2026-12-01 17:00", "FREQ=WEEKLY;BYDAY=TU;BYHOUR=17;BYMINUTE=0;BYSECOND=0",
     "every Tuesday at 17:00"),
    ("every week", "2026-12-08 14:00", "FREQ=WEEKLY;BYDAY=TU;BYHOUR=14;BYMINUTE=0;BYSECOND=0",
     "every Tuesday at 14:00"),
    ("every hour", "2026-12-01 15:00", "DTSTART:20261201T140000Z\nRRULE:FREQ=HOURLY;INTERVAL=1", "every hour"),
    ("every 2 hours", "2026-12-01 16:00", "DTSTART:20261201T150000Z\nRRULE:FREQ=HOURLY;INTERVAL=2", "every 2 hours"),
    ("every 15 minutes", "2026-12-01 14:15", "DTSTART:20261201T131500Z\nRRULE:FREQ=MINUTELY;INTERVAL=15",
     "every 15 minutes"),
])
def test_recurring(phrase: str, due: str, rule: str, description: str) -> None:
    when = parse_when(phrase, NOW, PARIS)
    assert (local(when)[:-3], when.recurrence, when.description) == (due, rule, description)
    assert next_after(rule, NOW, PARIS) == when.due


def test_every_two_hours_steps_in_exact_time() -> None:
    when = parse_when("every 2 hours", NOW, PARIS)
    assert when.recurrence is not None
    assert next_after(when.recurrence, when.due, PARIS) == when.due + timedelta(hours=2)
    assert next_after(when.recurrence, when.due - timedelta(seconds=1), PARIS) == when.due


def test_daily_rule_keeps_local_time_across_dst() -> None:
    now = datetime(2027, 3, 12, 12, 0, tzinfo=NEW_YORK)  # the clocks go forward on Sunday 2027-03-14
    when = parse_when("every day at 7:30", now, NEW_YORK)
    assert when.recurrence is not None
    moments = [when.due]
    for _ in range(4):
        moment = next_after(when.recurrence, moments[-1], NEW_YORK)
        assert moment is not None
        moments.append(moment)
    assert [m.astimezone(NEW_YORK).strftime("%m-%d %H:%M") for m in moments] == [
        "03-13 07:30", "03-14 07:30", "03-15 07:30", "03-16 07:30", "03-17 07:30"]
    assert [m.hour for m in moments[:3]] == [12, 11, 11]  # UTC: 07:30 EST, then 07:30 EDT


def test_weekly_rule_keeps_local_time_when_clocks_go_back() -> None:
    after = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)
    rule = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=7;BYMINUTE=30;BYSECOND=0"
    first = next_after(rule, after, NEW_YORK)
    assert first is not None
    second = next_after(rule, first, NEW_YORK)
    assert (first, second) == (datetime(2027, 11, 8, 12, 30, tzinfo=UTC), datetime(2027, 11, 15, 12, 30, tzinfo=UTC))


def test_next_after_is_strictly_after_and_ends() -> None:
    rule = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0"
    at_nine = datetime(2026, 12, 2, 9, 0, tzinfo=PARIS)
    assert next_after(rule, at_nine, PARIS) == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert next_after(rule + ";UNTIL=20261130T000000", NOW, PARIS) is None


@pytest.mark.parametrize("phrase", ["in 20 minutes", "tomorrow at 8", "every weekday at 7:30", "every 2 hours"])
def test_due_is_aware_utc(phrase: str) -> None:
    due = parse_when(phrase, NOW.astimezone(ZoneInfo("Asia/Tokyo")), PARIS).due
    assert due.tzinfo is UTC and due.utcoffset() == timedelta(0)


def test_now_in_another_zone_gives_the_same_answer() -> None:
    tokyo_now = NOW.astimezone(ZoneInfo("Asia/Tokyo"))
    assert parse_when("tomorrow at 8", tokyo_now, PARIS) == parse_when("tomorrow at 8", NOW, PARIS)


@pytest.mark.parametrize(("phrase", "message"), [
    ("next blursday", "I couldn't tell when 'next blursday' is."),
    ("", "I didn't catch a time for that."),
    ("  ?", "I didn't catch a time for that."),
    ("at 25:00", "25:00 isn't a time of day."),
    ("at 13 pm", "13 pm isn't a time of day."),
    ("in -5 minutes", "That time isn't in the future; tell me how long from now."),
    ("in 0 minutes", "That time isn't in the future; tell me how long from now."),
    ("in 400 days", "That's more than a year away; I can only set reminders up to a year ahead."),
    ("in 60 weeks", "That's more than a year away; I can only set reminders up to a year ahead."),
    ("in 99999999999999 weeks", "That's more than a year away; I can only set reminders up to a year ahead."),
    ("every 0 minutes", "Tell me a whole number of minutes or hours between reminders."),
    ("every 1.5 hours", "Tell me a whole number of minutes or hours between reminders."),
    ("every 99999999999999 hours", "That's more than a year between reminders."),
    ("today at 8", "08:00 today has already passed."),
    ("this morning", "09:00 today has already passed."),
    ("on february 30", "There's no 30 February."),
    ("on february 29", "There's no 29 February."),  # 2027 is not a leap year
    ("on the 32nd", "There's no day 32 in a month."),
    ("every day tomorrow", "I couldn't tell when 'every day tomorrow' is."),
    ("take the pizza out", "I couldn't tell when 'take the pizza out' is."),
])
def test_errors(phrase: str, message: str) -> None:
    with pytest.raises(ScheduleError) as error:
        parse_when(phrase, NOW, PARIS)
    assert str(error.value) == message


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_when("in 5 minutes", NOW.replace(tzinfo=None), PARIS)
    with pytest.raises(ValueError):
        next_after("FREQ=DAILY", NOW.replace(tzinfo=None), PARIS)
