"""Split marked-up text into messages of at most `limit` characters.

Breaks prefer paragraph, then line, then sentence, then word boundaries outside any markup;
only an element longer than a whole message is cut inside, and then it is closed at the end of
one part and reopened at the start of the next, so every part stands on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SENTENCE_ENDS = ".!?…"
OUTSIDE = 3  # ranks from here up are breaks outside any element


@dataclass(frozen=True)
class Token:
    """A character, or an atom that must not be cut (a tag, an entity, an inline code span).

    `opens` is (opening text, closing text) for an element that starts here; `closes` ends the
    innermost open element.
    """

    text: str
    opens: tuple[str, str] | None = None
    closes: bool = False


def split_tokens(tokens: list[Token], limit: int, measure: Callable[[str], int] = len) -> list[str]:
    stacks = _stacks(tokens)
    parts: list[str] = []
    start = 0
    while start < len(tokens):
        start = _skip_space(tokens, stacks, start)
        if start >= len(tokens):
            break
        reopen = "".join(opening for opening, _ in stacks[start])
        end = _best_end(tokens, stacks, start, limit - measure(reopen), measure)
        body = "".join(token.text for token in tokens[start:end])
        body = body.rstrip("\n") if stacks[end] else body.rstrip()
        close = "".join(closing for _, closing in reversed(stacks[end]))
        part = (reopen + body + close).strip()
        if part:
            parts.append(part)
        start = end
    return parts


def _stacks(tokens: list[Token]) -> list[tuple[tuple[str, str], ...]]:
    """The open elements before each token (and after the last)."""
    stack: list[tuple[str, str]] = []
    stacks = [()]
    for token in tokens:
        if token.opens:
            stack.append(token.opens)
        elif token.closes and stack:
            stack.pop()
        stacks.append(tuple(stack))
    return stacks


def _skip_space(tokens: list[Token], stacks: list, index: int) -> int:
    while index < len(tokens) and not stacks[index] and tokens[index].text.isspace():
        index += 1
    return index


def _best_end(tokens: list[Token], stacks: list, start: int, room: int, measure: Callable[[str], int]) -> int:
    """The end of the part that starts at `start`: the best-ranked break that fits in `room`."""
    used = 0
    candidates: list[tuple[int, int]] = []  # (end, rank)
    end = start
    while end < len(tokens):
        size = measure(tokens[end].text)
        closing = measure("".join(c for _, c in stacks[end + 1]))
        if used + size + closing > room:
            break
        used += size
        end += 1
        candidates.append((end, _rank(tokens, stacks, end)))
    if end == len(tokens):
        return end
    if not candidates:  # one atom is bigger than a message: it has to go alone
        return start + 1
    furthest = candidates[-1][0]
    outside = [c for c in candidates if c[1] >= OUTSIDE]
    pool = outside or candidates
    late = [c for c in pool if c[0] - start >= (furthest - start) // 2] or pool
    return max(late, key=lambda c: (c[1], c[0]))[0]


def _rank(tokens: list[Token], stacks: list, end: int) -> int:
    """How good a break it is to end a part just before `tokens[end]`; higher is better."""
    if end >= len(tokens):
        return 9
    before, after = tokens[end - 1].text, tokens[end].text
    inside = bool(stacks[end])
    if before == "\n" and after == "\n":
        rank = 6
    elif after == "\n" or before == "\n":
        rank = 5
    elif after == " " and before and before[-1] in SENTENCE_ENDS:
        rank = 4
    elif after == " " or before == " ":
        rank = 3
    else:
        return -1
    return rank - 4 if inside else rank


def text_tokens(text: str) -> list[Token]:
    return [Token(char) for char in text]
