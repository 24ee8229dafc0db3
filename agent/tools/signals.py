"""Words that show a request may need a tool, shared by the tools' own `signals` and exact patterns.

A tool is offered only when its signals match the request (or, for a short follow-up, the request
before it); anything else reaches the model as a plain question."""

from __future__ import annotations

import re

NUMBER_WORDS = (r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
                r"hundred|thousand|million|billion|half|dozen|couple")
NUMBER = rf"(?:\d|\b(?:{NUMBER_WORDS})\b)"
# A number in digits ("1,250.5"), read from its first digit: a start mid-run would rescan the run.
NUMERAL = r"-?(?<![\d.,])\d+(?:[.,]\d+)*"
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def without_thousands_separators(text: str) -> str:
    """"1,000" as 1000; not "3,4" (two numbers, or a function's two arguments), nor the "47,900,1600" of a slip."""
    return _THOUSANDS.sub("", text)


def with_number(words: str, also: str | None = None) -> re.Pattern[str]:
    """`words` in a request that also holds a number, in either order, or `also` anywhere. Anchored at the start:
    unanchored, `search` would scan the rest of the text from every position (a 10,000-character message took 9 s
    per tool)."""
    either = f"|(?=.*(?:{also}))" if also else ""
    return re.compile(rf"\A(?:(?=.*{NUMBER})(?=.*(?:{words})){either})", re.I | re.S)


def words(alternatives: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{alternatives})\b", re.I)
