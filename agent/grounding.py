"""Whether a tool call has ground in what was said: a call whose arguments hold numbers runs only when one of
them was said in the request, the conversation or an earlier result (small models otherwise call the
calculator with numbers of their own, "4 * 9" for the legs of a spider)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from text_to_num import alpha2digit

from agent.tools.signals import without_thousands_separators

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_AND_A_HALF = re.compile(r"(?<!\d)(\d+) and a half\b", re.I)
ROUNDING = 0.01  # "about 154 pounds" states 154.32


def numbers_in(text: str) -> set[float]:
    """The numbers in text, written in digits or words ("two and a half" is 2.5; "half" 0.5)."""
    words = alpha2digit(without_thousands_separators(text), "en", threshold=0)
    digits = _AND_A_HALF.sub(lambda m: f"{m[1]}.5", words)
    found = {float(n) for n in _NUMBER.findall(digits)}
    return found | ({0.5} if re.search(r"\bhalf\b", text, re.I) else set())


def argument_numbers(arguments: dict[str, Any]) -> set[float]:
    found: set[float] = set()
    for value in arguments.values():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            found.add(float(value))
        elif isinstance(value, str):
            found |= {float(n) for n in _NUMBER.findall(without_thousands_separators(value))}
    return found


def said_numbers(texts: Iterable[str]) -> set[float]:
    """Every number the texts hold (`numbers_in`), read once per request."""
    return set().union(*(numbers_in(text) for text in texts))


def grounded(arguments: dict[str, Any], known: set[float]) -> bool:
    """True when the arguments hold no number but 0 and 1 (an offset of none, the one of "in a week"), or at least
    one of `known`."""
    wanted = argument_numbers(arguments) - {0.0, 1.0}
    return not wanted or any(_same(number, known) for number in wanted)


def _same(number: float, known: set[float]) -> bool:
    return any(abs(number - other) <= 1e-9 * max(1.0, abs(other)) for other in known)


def states_a_result(answer: str, results: Iterable[str], quoted: Iterable[str] = ()) -> bool:
    """Whether the answer states one of the numbers the tools returned (to within rounding), or they returned
    none, and holds each text of `quoted` as it stands: a small model sometimes answers around its result ("That's
    how much you make in a year.", "The word spelled backwards is microphone.")."""
    wanted = said_numbers(results)
    given = numbers_in(answer)
    stated = not wanted or any(abs(number - result) <= ROUNDING * abs(result) for number in given for result in wanted)
    return stated and all(text.casefold() in answer.casefold() for text in quoted)
