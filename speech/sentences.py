"""Sentence splitting for speech: whole texts, and text that arrives a token at a time."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … followed by space, unless the dot ends a common abbreviation
# or sits inside a number ("3.5"); blank lines and list items also end one.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr", "approx"}
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
MAX_SENTENCE_CHARS = 400


def _ends_in_abbreviation(text: str) -> bool:
    word = text.rstrip().rstrip(".").rsplit(None, 1)[-1].lower() if text.strip() else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[str]:
    """Split text into speakable sentences; very long ones are cut at commas or spaces."""
    sentences: list[str] = []
    pending = ""
    position = 0
    for match in _BOUNDARY.finditer(text):
        piece = text[position : match.start()]
        position = match.end()
        pending = f"{pending} {piece}".strip() if pending else piece.strip()
        if pending and not _ends_in_abbreviation(pending):
            sentences.append(pending)
            pending = ""
    tail = f"{pending} {text[position:]}".strip()
    if tail:
        sentences.append(tail)
    return [chunk for sentence in sentences for chunk in _cut_long(sentence)]


def _cut_long(sentence: str) -> list[str]:
    chunks: list[str] = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        cut = sentence.rfind(", ", 0, MAX_SENTENCE_CHARS)
        cut = cut + 1 if cut > 0 else sentence.rfind(" ", 0, MAX_SENTENCE_CHARS)
        cut = cut if cut > 0 else MAX_SENTENCE_CHARS
        chunks.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        chunks.append(sentence)
    return chunks


_CLAUSE = re.compile(r"(?<=[,;:—])\s+")
FIRST_CLAUSE_CHARS = 24


def ends_a_clause(piece: str) -> bool:
    """Whether a piece of speech is a first clause cut from its sentence (`split_first_clause`), not a sentence."""
    return piece.rstrip()[-1:] in ",;:—"


def split_first_clause(text: str, min_chars: int = FIRST_CLAUSE_CHARS) -> tuple[str, str] | None:
    """The text cut after its first clause (a comma, semicolon, colon or dash) that is `min_chars` long, if any:
    speaking that clause first lets the first audio start sooner."""
    for match in _CLAUSE.finditer(text):
        if match.start() >= min_chars:
            return text[: match.start()].strip(), text[match.end() :]
    return None


def speech_pieces(text: str, first_clause_chars: int = FIRST_CLAUSE_CHARS) -> list[str]:
    """`split_sentences`, with the first sentence cut after its first long enough clause."""
    sentences = split_sentences(text)
    if sentences and (cut := split_first_clause(sentences[0], first_clause_chars)):
        sentences[:1] = [cut[0], cut[1].strip()]
    return sentences


class SentenceBuffer:
    """Collects streamed text deltas and hands out sentences as soon as they are complete.

    The first piece may end at a clause (a comma, semicolon, colon or dash) once it is
    `first_clause_chars` long, so the first audio of a reply can start sooner.
    """

    def __init__(self, first_clause_chars: int = FIRST_CLAUSE_CHARS) -> None:
        self._text = ""
        self._first_clause_chars = first_clause_chars
        self._released = False

    def feed(self, delta: str) -> list[str]:
        self._text += delta
        sentences = self._complete_sentences()
        if not sentences and not self._released:
            sentences = self._first_clause()
        self._released = self._released or bool(sentences)
        return sentences

    def _first_clause(self) -> list[str]:
        if cut := split_first_clause(self._text, self._first_clause_chars):
            clause, self._text = cut
            return [clause]
        return []

    def _complete_sentences(self) -> list[str]:
        last_boundary = None
        for match in _BOUNDARY.finditer(self._text):
            if not _ends_in_abbreviation(self._text[: match.start()]):
                last_boundary = match
        if last_boundary is None:
            return []
        complete, self._text = self._text[: last_boundary.start()], self._text[last_boundary.end() :]
        return split_sentences(complete)

    def flush(self) -> list[str]:
        sentences, self._text = split_sentences(self._text), ""
        self._released = self._released or bool(sentences)
        return sentences
