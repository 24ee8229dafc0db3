"""Text for the ear, made on the speech side (the synthesizer applies `for_speech` to all it is given): no markdown or
code, symbols and units said as words, no characters a voice cannot say."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

from speech.sentences import split_sentences

SPOKEN_SENTENCES = 2
# Control characters (NUL crashes the phonemizer), unpaired surrogates, private use and unassigned code points.
_UNSPEAKABLE = frozenset({"Cc", "Cs", "Co", "Cn"})
_WANTS_MORE = re.compile(r"\b(explain|in detail|details|tell me (?:more|everything|all)|more about|step by step|"
                         r"list|story|poem|describe|walk me through|read (?:me|out)|summar(?:y|ise|ize))\b", re.I)

_CODE_BLOCK = re.compile(r"\s*```.*?(?:```|$)\s*", re.S)
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)]+)\)")
_URL = re.compile(r"https?://\S+")
_MARKS = re.compile(r"(\*\*|__|~~|`|^#{1,6}\s*|^\s*(?:[-*•]|\d+[.)])\s+|^>\s*)", re.M)
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)([^*]+?)\*(?!\w)")
_UNITS = [
    (r"°\s*C\b", " degrees Celsius"), (r"°\s*F\b", " degrees Fahrenheit"), (r"°", " degrees"),
    (r"(?<=\d)\s*km/h\b", " kilometres per hour"), (r"(?<=\d)\s*mph\b", " miles per hour"),
    (r"(?<=\d)\s*km\b", " kilometres"), (r"(?<=\d)\s*kg\b", " kilograms"), (r"(?<=\d)\s*lbs?\b", " pounds"),
    (r"(?<=\d)\s*mi\b", " miles"), (r"(?<=\d)\s*cm\b", " centimetres"), (r"(?<=\d)\s*mm\b", " millimetres"),
    (r"(?<=\d)\s*ml\b", " millilitres"), (r"(?<=\d)\s*ft\b", " feet"), (r"(?<=\d)\s*in\b(?= |$|\.)", " inches"),
    (r"(?<=\d)\s*l\b", " litres"), (r"(?<=\d)\s*g\b", " grams"), (r"(?<=\d)\s*m\b", " metres"),
    (r"(?<=\d)\s*%", " percent"), (r"\s&\s", " and "), (r"(?<=\d),(?=\d{3}\b)", ""),
    (r"(?<=\d)\s*\*\s*(?=\d)", " times "), (r"(?<=\d)\s*/\s*(?=\d)", " divided by "),
    (r"(?<=\d)\s*\+\s*(?=\d)", " plus "), (r"(?<=[\d)])\s*\^\s*(?=\d)", " to the power of "),
    (r"\bsqrt\(([^)]+)\)", r"the square root of \1"), (r"(?<=\d)\s+-\s+(?=\d)", " minus "), (r"(?<=[\d)])\s*=\s*(?=-?\d)", " is "),
]


_FILLERS = ("sure", "of course", "certainly", "absolutely", "okay", "ok", "alright", "great question",
            "good question", "let me think", "let me see", "let me check", "well", "hmm")
_OPENING_FILLER = re.compile(r"^\s*(?:(?:" + "|".join(_FILLERS) + r")\s*[!,.:;…—-]+\s*)+", re.I)


async def without_opening_filler(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A model's stream without the filler its text opens with ("Sure! The ocean …" → "The ocean …"): it says
    nothing, so it is neither the first text nor the first audio. Text is held back only while it may still be
    one; items that are not text pass as they come. An answer that is nothing but a filler stays whole."""
    held: str | None = ""
    async for item in items:
        if held is None:
            yield item
        elif not isinstance(item, str):
            if held:
                yield _without_filler(held) or held
            held = None
            yield item
        else:
            held += item
            if not _may_be_filler(held):
                if rest := _without_filler(held):
                    yield rest
                held = None
    if held:
        yield _without_filler(held) or held


def _may_be_filler(text: str) -> bool:
    tail = _OPENING_FILLER.sub("", text, count=1).lstrip().lower()
    return not tail or any(filler.startswith(tail) for filler in _FILLERS)


def _without_filler(text: str) -> str:
    rest = _OPENING_FILLER.sub("", text, count=1)
    return rest[:1].upper() + rest[1:] if rest != text else rest


def spoken_sentence_limit(request: str) -> int | None:
    """How many sentences a spoken answer to `request` gets: two, unless the user asked for more."""
    return None if _WANTS_MORE.search(request) else SPOKEN_SENTENCES


def spoken_part(text: str, request: str) -> str:
    """The part of a whole answer a voice says: its first sentences, unless the user asked for more."""
    limit = spoken_sentence_limit(request)
    sentences = split_sentences(text)
    return " ".join(sentences[:limit]) if limit and len(sentences) > limit else text


def for_speech(text: str) -> str:
    """What a voice should say for `text`; the written reply keeps the original."""
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in _UNSPEAKABLE)
    return _rewrite(text)


def _rewrite(text: str) -> str:
    spoken = _CODE_BLOCK.sub(" I've put the code in the written reply. ", text)
    spoken = _LINK.sub(r"\1", spoken)
    spoken = _URL.sub("the link in the written reply", spoken)
    spoken = _MARKS.sub("", spoken)
    spoken = _EMPHASIS.sub(r"\1", spoken)
    for pattern, replacement in _UNITS:
        spoken = re.sub(pattern, replacement, spoken)
    return re.sub(r"[ \t]+", " ", spoken).strip()
