"""What a reply becomes on a platform: parts that each pass the platform's rules, or plain text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    text: str
    parse_mode: str | None  # "HTML", "Markdown", or None for plain text
    index: int
    count: int


@dataclass(frozen=True)
class Rendered:
    parts: list[Part]
    problems: list[str] = field(default_factory=list)  # why the marked-up rendering was refused, if it was

    @property
    def fell_back(self) -> bool:
        return bool(self.problems)


def number_parts(texts: list[str], parse_mode: str | None) -> list[Part]:
    return [Part(text, parse_mode, index, len(texts)) for index, text in enumerate(texts)]
