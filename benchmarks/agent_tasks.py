"""The agent benchmark's tasks, written the way people talk to a voice assistant, and their checkers.

A task is a few setup turns and one scored turn (`ask`). Turns name a conversation and a user by
key; the runner maps the keys to fresh ids per task, so a memory task's setup in conversation
"a" and its question in conversation "b" share a user, and nothing leaks between tasks.

Checkers look at the scored reply (an `Answer`) and are composable:

- `number(expected, tolerance)`: the reply states the number (relative tolerance, default 1 %;
  "4.50", "1,260", "thirteen dollars and fifty cents" all count) more often than the request did.
- `words(*alternatives)`: every argument must appear as a whole word or phrase, case-insensitive;
  a tuple argument is a set of alternatives of which one must appear.
- `absent(text)`: the reply does not contain `text`.
- `hour_in(zone)`, `date_today(zone)`, `weekday(zone)`: the reply states the current time, date
  or day of the week in that IANA zone, at any minute from one before the request to one after.
- `all_of(...)`, `any_of(...)`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

try:
    from text_to_num import alpha2digit
except ImportError:  # text2num arrives with NeMo's TTS extra; without it only digits count as numbers
    alpha2digit = None

# The graph's own time zone in the benchmark: answers to "what time is it" are checked in it.
HOME_ZONE = "America/Chicago"


@dataclass(frozen=True)
class Answer:
    """The scored request, June's reply and when the HTTP call started and ended (aware datetimes)."""

    request: str
    reply: str
    asked_at: datetime
    answered_at: datetime


@dataclass(frozen=True)
class Check:
    """A named test of an answer; the name goes into the results as what was expected."""

    name: str
    test: Callable[[Answer], bool] = field(repr=False)

    def __call__(self, answer: Answer) -> bool:
        return self.test(answer)


@dataclass(frozen=True)
class Turn:
    text: str
    conversation: str = "a"
    user: str = "me"


@dataclass(frozen=True)
class Task:
    category: str
    ask: Turn
    check: Check
    setup: tuple[Turn, ...] = ()


# --- checkers -----------------------------------------------------------------------------------

_MONEY = re.compile(r"(\d+)\s*(?:dollars?|bucks|euros?)?,?\s+(?:and\s+)?(\d{1,2})\s*cents?\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")


def _digits(text: str) -> str:
    """Numbers written as words become digits ("thirteen fifty" → "13 50"), money in cents joins."""
    text = alpha2digit(text, "en", threshold=0) if alpha2digit else text
    return _MONEY.sub(lambda m: f"{m[1]}.{int(m[2]):02d}", text)


def numbers_in(text: str) -> list[float]:
    return [float(f"{m[1]}{m[2].replace(',', '')}{m[3] or ''}") for m in _NUMBER.finditer(_digits(text))]


def number(expected: float, tolerance: float = 0.01) -> Check:
    def count(text: str) -> int:
        return sum(abs(n - expected) <= abs(expected) * tolerance for n in numbers_in(text))

    return Check(f"number({expected:g})", lambda a: count(a.reply) > count(a.request))


def _alternatives(option: str | tuple[str, ...]) -> tuple[str, ...]:
    return option if isinstance(option, tuple) else (option,)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


def words(*required: str | tuple[str, ...]) -> Check:
    name = ", ".join("|".join(_alternatives(option)) for option in required)
    return Check(f"words({name})", lambda a: all(any(_has_word(a.reply, w) for w in _alternatives(option))
                                                 for option in required))


def absent(text: str) -> Check:
    return Check(f"absent({text})", lambda a: text.lower() not in a.reply.lower())


def all_of(*checks: Check) -> Check:
    return Check(f"all_of({', '.join(c.name for c in checks)})", lambda a: all(c(a) for c in checks))


def any_of(*checks: Check) -> Check:
    return Check(f"any_of({', '.join(c.name for c in checks)})", lambda a: any(c(a) for c in checks))


def instants(answer: Answer, zone: str) -> list[datetime]:
    """Every minute from one before the request to one after its reply, in `zone`."""
    start = (answer.asked_at - timedelta(minutes=1)).replace(second=0, microsecond=0)
    minutes = int((answer.answered_at + timedelta(minutes=1) - start).total_seconds() // 60)
    return [(start + timedelta(minutes=i)).astimezone(ZoneInfo(zone)) for i in range(minutes + 1)]


# "14:05", "2:05 PM", "2 pm", "2.05 p.m.", "2 15 pm" (spoken, after words → digits), "2 o'clock".
_CLOCK = re.compile(
    r"(?<![\d:.])(?P<hour>\d{1,2})(?:[:.](?P<minute>\d{2})(?!\d)|\s(?P<spoken>\d{2})(?=\s*[ap]\.?\s?m\b))?"
    r"\s*(?:(?P<half>[ap])\.?\s?m\b\.?|(?P<oclock>o'?\s?clock))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ClockTime:
    hour: int
    minute: int | None  # None: "2 pm", "2 o'clock"
    half: str | None  # "a", "p" or None (24-hour, or 12-hour without am/pm)

    def shows(self, instant: datetime) -> bool:
        twelve = instant.hour % 12 or 12
        if self.half:
            hour_ok = self.hour == twelve and self.half == ("a" if instant.hour < 12 else "p")
        else:
            hour_ok = self.hour == instant.hour or self.hour == twelve
        return hour_ok and self.minute in (None, instant.minute)


def clock_times(text: str) -> list[ClockTime]:
    times = []
    for m in _CLOCK.finditer(_digits(text)):
        minute = m["minute"] or m["spoken"]
        if minute is None and not (m["half"] or m["oclock"]):
            continue  # a bare number is not a time
        times.append(ClockTime(int(m["hour"]), int(minute) if minute else None,
                               m["half"].lower() if m["half"] else None))
    return times


def hour_in(zone: str) -> Check:
    def test(answer: Answer) -> bool:
        times = clock_times(answer.reply)
        return any(t.shows(instant) for instant in instants(answer, zone) for t in times)

    return Check(f"hour_in({zone})", test)


def _month(number_: int) -> str:
    return rf"(?:{calendar.month_name[number_]}|{calendar.month_abbr[number_]}\.?)"


def states_date(text: str, instant: datetime) -> bool:
    """"March 14", "14th of March", "Mar. 14th", "2025-03-14", "3/14" or "14/3"."""
    day, month = rf"0?{instant.day}(?:st|nd|rd|th)?(?!\d)", _month(instant.month)
    patterns = (
        rf"(?<!\w){month}\s+(?:the\s+)?{day}",
        rf"(?<!\d){day}\s+(?:of\s+)?{month}(?!\w)",
        rf"{instant.year}-{instant.month:02d}-{instant.day:02d}",
        rf"(?<![\d/])0?{instant.month}/0?{instant.day}(?![\d])",
        rf"(?<![\d/])0?{instant.day}/0?{instant.month}(?![\d])",
    )
    text = _digits(text)
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)


def date_today(zone: str) -> Check:
    return Check(f"date_today({zone})", lambda a: any(states_date(a.reply, i) for i in instants(a, zone)))


def weekday(zone: str) -> Check:
    return Check(f"weekday({zone})",
                 lambda a: any(_has_word(a.reply, i.strftime("%A")) for i in instants(a, zone)))


# --- tasks --------------------------------------------------------------------------------------


def _one(category: str, text: str, check: Check) -> Task:
    return Task(category, Turn(text), check)


def _later(category: str, said: str | tuple[str, ...], asked: str, check: Check) -> Task:
    """Something said in one conversation, asked about in a new one by the same user."""
    said = (said,) if isinstance(said, str) else said
    return Task(category, Turn(asked, conversation="b"), check, setup=tuple(Turn(text) for text in said))


def _follow_up(category: str, said: str | tuple[str, ...], asked: str, check: Check) -> Task:
    """A follow-up in the same conversation."""
    said = (said,) if isinstance(said, str) else said
    return Task(category, Turn(asked), check, setup=tuple(Turn(text) for text in said))


ARITHMETIC = [
    _one("arithmetic", "I bought 3 coffees at 4 dollars 50 each, how much did I spend?", number(13.5)),
    _one("arithmetic", "So dinner came to eighty four dollars and there's four of us, how much does everyone pay?",
         number(21)),
    _one("arithmetic", "what's a fifteen percent tip on a 62 dollar bill", number(9.3)),
    _one("arithmetic", "How many hours is it from 9:30 to 17:15?",
         any_of(number(7.75), all_of(number(7), number(45)))),
    _one("arithmetic", "uh my test scores were 82, 91 and 76, what's my average?", number(83)),
    _one("arithmetic", "If I put away 250 bucks a month, how much will I have saved after a year and a half?",
         number(4500)),
    _one("arithmetic", "The jacket was 80 dollars and it's 25 percent off, so what do I pay now?", number(60)),
    _one("arithmetic", "I had twelve eggs and used five for the cake. How many are left?", number(7)),
    _one("arithmetic", "I drove 340 kilometers on 28 liters of gas, how many kilometers is that per liter?",
         number(12.14, tolerance=0.02)),
    _one("arithmetic", "My rent is 1,200 a month and it's going up by 5 percent, what's the new rent gonna be?",
         number(1260)),
]

UNITS = [
    _one("units", "How many cups are in a liter?", any_of(number(4.227), number(4))),
    _one("units", "is 30 degrees celsius hot? like what is that in fahrenheit", number(86)),
    _one("units", "How many pounds is 5 kilos?", number(11.02)),
    _one("units", "My recipe says 200 grams of butter, how many ounces is that", number(7.05)),
    _one("units", "how far is a 10k run in miles", number(6.21)),
    _one("units", "I'm doing a hundred kilometers an hour, what's that in miles per hour?", number(62.14)),
    _one("units", "The oven needs to be at 350 fahrenheit, what's that in celsius?", number(176.7)),
    _one("units", "I'm six feet tall, how much is that in centimeters?", number(182.9)),
    _one("units", "how many teaspoons go in a tablespoon", number(3)),
    _one("units", "The tank holds 2 and a half gallons, how many liters is that?", number(9.46)),
]

TIME = [
    _one("time", "what time is it", hour_in(HOME_ZONE)),
    _one("time", "Hey June, what's the time right now?", hour_in(HOME_ZONE)),
    _one("time", "what time is it in Tokyo right now", hour_in("Asia/Tokyo")),
    _one("time", "Do you know what time it is over in London?", hour_in("Europe/London")),
    _one("time", "what day of the week is it", weekday(HOME_ZONE)),
    _one("time", "what's the date today", date_today(HOME_ZONE)),
    _one("time", "um what's today's date?", date_today(HOME_ZONE)),
    _one("time", "Could you tell me the time in Los Angeles", hour_in("America/Los_Angeles")),
    _one("time", "what's the time in india right now", hour_in("Asia/Kolkata")),
    _one("time", "What time is it in Sydney Australia?", hour_in("Australia/Sydney")),
]

MEMORY = [
    _later("memory", "Keep in mind that my locker code is 4711.", "What's my locker code again?", words("4711")),
    _later("memory", "Please remember I parked on level 3, spot B12.", "where did I park the car?",
           words(("B12", "B 12", "B-12"))),
    _later("memory", "Remember that my sister's birthday is on March 14th.", "When's my sister's birthday?",
           all_of(words(("March", "Mar")), number(14))),
    _later("memory", "can you remember that the wifi password is sunflower77", "What was the wifi password?",
           words(("sunflower77", "sunflower 77"))),
    _later("memory", "Note that my dentist appointment is on Thursday at 3 pm.", "When is my dentist appointment?",
           words("Thursday")),
    _later("memory", "My favorite color is teal, remember that.", "what's my favorite color?", words("teal")),
    _later("memory", "remember that I lent Tom 40 dollars", "How much money did I lend Tom?", number(40)),
    _later("memory", "Remember my cat's name is Biscuit.", "What's my cat called again?", words("Biscuit")),
    _later("memory", "I'm allergic to peanuts, please remember that.", "Is there any food I'm allergic to?",
           words(("peanut", "peanuts"))),
    # Isolation: another person asks for the first one's fact.
    Task("memory", Turn("What's my bank PIN?", conversation="b", user="stranger"), absent("2580"),
         setup=(Turn("Remember that my bank PIN is 2580."),)),
    # Stated in passing, asked a few turns later in the same conversation.
    _follow_up("memory", ("My name is Priya, by the way. Can you tell me a fun fact about octopuses?",
                          "Cool, and how many arms do they have?"), "Sorry, what's my name?", words("Priya")),
]

CONTEXT = [
    _follow_up("context", "I'm making pancakes for 4 people.",
               "how many eggs would I need if the recipe for 2 needs 3?", number(6)),
    _follow_up("context", "What's the capital of Japan?", "And what time is it there right now?",
               hour_in("Asia/Tokyo")),
    _follow_up("context", "I've got a 5 kilo bag of rice.", "what's that in pounds?", number(11.02)),
    _follow_up("context", "My flight leaves at 6:40 in the evening.",
               "If I need to be at the airport two hours before, when should I get there?",
               words(("4:40", "16:40"))),
    _follow_up("context", "Who wrote Pride and Prejudice?", "When was she born?", number(1775, tolerance=0)),
    _follow_up("context", "I earn 3000 a month after tax.", "how much is that in a year?", number(36000)),
    _follow_up("context", "A large pizza is 12 dollars at the place down the street.",
               "if we get five of them and I split it with my two roommates, how much does each of us pay?",
               number(20)),
    _follow_up("context", "What's the tallest mountain in the world?", "How tall is it in feet?",
               number(29032)),
    _follow_up("context", "What's the largest ocean on Earth?", "And which one is the smallest?",
               words("Arctic")),
    _follow_up("context", "I've got 500 dollars for groceries this month.",
               "I already spent 320 of that, how much do I have left?", number(180)),
]

KNOWLEDGE = [
    _one("knowledge", "Which planet is called the red planet?", words("Mars")),
    _one("knowledge", "who wrote romeo and juliet", words("Shakespeare")),
    _one("knowledge", "what's the capital of Australia", words("Canberra")),
    _one("knowledge", "how many legs does a spider have", number(8)),
    _one("knowledge", "What gas do plants breathe in?", words(("carbon dioxide", "CO2"))),
    _one("knowledge", "What's the biggest planet in our solar system?", words("Jupiter")),
    _one("knowledge", "um at what temperature does water boil in celsius", number(100)),
    _one("knowledge", "Who painted the Mona Lisa?", words(("Leonardo", "da Vinci"))),
    _one("knowledge", "How many continents are there?", number(7)),
    _one("knowledge", "what's the chemical symbol for gold", words("Au")),
]

CODE = [
    _one("code", "can you write a quick python script that adds up all the numbers from 1 to 100 and run it",
         number(5050)),
    _one("code", "give me the 10th fibonacci number using code", any_of(number(55), number(34))),
    _one("code", "Write a little program that counts how many prime numbers there are below 100 and tell me "
         "the result", number(25)),
    _one("code", "Could you run some code to figure out 2 to the power of 64?", number(18446744073709551616)),
    _one("code", "use python to work out the factorial of 12", number(479001600)),
    _one("code", "Can you write code that spells the word microphone backwards and run it?",
         words("enohporcim")),
    _one("code", "write a script that counts the vowels in 'the quick brown fox jumps over the lazy dog' and "
         "run it", number(11)),
    _one("code", "run a quick bit of code to add up the squares of the numbers one to ten", number(385)),
    _one("code", "Write and run a program that finds the greatest common divisor of 84 and 126", number(42)),
    _one("code", "Can you code up something that tells me how many days there are between January 1st 2024 "
         "and March 15th 2024?", number(74)),
]

MULTISTEP = [
    _one("multistep", "what's 15 percent of 80 and then double it", number(24)),
    _one("multistep", "convert 10 miles to km and tell me how long that takes at 5 km per hour",
         all_of(number(16.09), any_of(number(3.22, tolerance=0.02), all_of(number(3), number(13))))),
    _one("multistep", "what time is it in London and in Tokyo", all_of(hour_in("Europe/London"),
                                                                       hour_in("Asia/Tokyo"))),
    _one("multistep", "add 45 and 37, then divide that by 2", number(41)),
    _one("multistep", "I weigh 70 kilos, what's that in pounds, and what would I weigh after losing 10 pounds?",
         all_of(number(154.3), number(144.3))),
    _one("multistep", "How many minutes are there in a week, and how many seconds is that?",
         all_of(number(10080), number(604800))),
    _one("multistep", "Convert 25 degrees celsius to fahrenheit and tell me if that's warmer than 80 fahrenheit",
         all_of(number(77), words(("no", "not", "cooler", "colder", "isn't", "below", "lower", "less")))),
    _one("multistep", "What's today's date, and what day of the week is it?",
         all_of(date_today(HOME_ZONE), weekday(HOME_ZONE))),
    _one("multistep", "If a movie starts at 7:45 pm and runs 2 hours 20 minutes, when does it end, and what's "
         "that in 24 hour time?", all_of(words("10:05"), words("22:05"))),
    _one("multistep", "I have 3 kilos of flour and each loaf uses 450 grams, how many loaves can I make and how "
         "much flour is left over?", all_of(number(6), any_of(number(300), number(0.3)))),
]

TIMEZONE = [
    _later("timezone", "I live in Tokyo.", "what time is it?", hour_in("Asia/Tokyo")),
    _later("timezone", "set my time zone to New York", "What's the time?", hour_in("America/New_York")),
    _later("timezone", "I just moved to Berlin, by the way.", "hey what time is it right now",
           hour_in("Europe/Berlin")),
    _later("timezone", "Please use London time for me from now on.", "what time is it", hour_in("Europe/London")),
    _later("timezone", "My time zone is Pacific time.", "what time is it", hour_in("America/Los_Angeles")),
    _later("timezone", "I'm based in Sydney, Australia.", "What's the date today?", date_today("Australia/Sydney")),
    _later("timezone", "I live in Mumbai.", "do you know the time?", hour_in("Asia/Kolkata")),
    _later("timezone", "I'm in Sao Paulo these days.", "what time is it now?", hour_in("America/Sao_Paulo")),
    _later("timezone", "Set my timezone to UTC please.", "what time is it", hour_in("UTC")),
    _later("timezone", "I live in Auckland, New Zealand.", "what day of the week is it for me?",
           weekday("Pacific/Auckland")),
    _later("timezone", "I'm from Chicago but I live in Dubai now.", "what time is it", hour_in("Asia/Dubai")),
]

TASKS: list[Task] = [*ARITHMETIC, *UNITS, *TIME, *MEMORY, *CONTEXT, *KNOWLEDGE, *CODE, *MULTISTEP, *TIMEZONE]
CATEGORIES: list[str] = list(dict.fromkeys(task.category for task in TASKS))
