"""Discord's Markdown: the platform's rules for a message, splitting, and a plain-text fallback."""

from __future__ import annotations

import re

from bots.rendering import Rendered, number_parts
from bots.splitting import Token, split_tokens, text_tokens

MESSAGE_LIMIT = 2000
FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n(.*?)```", re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]{1,200}`")
SPECIAL = re.compile(r"([\\*_~`|>#\[\]()-])")


def markdown_tokens(text: str) -> list[Token]:
    """Code fences become elements (closed and reopened when cut), inline code spans atoms."""
    tokens: list[Token] = []
    cursor = 0
    for fence in FENCE.finditer(text):
        tokens.extend(_inline_tokens(text[cursor:fence.start()]))
        opening = f"```{fence.group(1)}\n"
        tokens.append(Token(opening, opens=(opening, "\n```")))
        tokens.extend(text_tokens(fence.group(2).rstrip("\n")))
        tokens.append(Token("\n```", closes=True))
        cursor = fence.end()
    tokens.extend(_inline_tokens(text[cursor:]))
    return tokens


def _inline_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    cursor = 0
    for span in INLINE_CODE.finditer(text):
        tokens.extend(text_tokens(text[cursor:span.start()]))
        tokens.append(Token(span.group(0)))
        cursor = span.end()
    tokens.extend(text_tokens(text[cursor:]))
    return tokens


def problems(markdown: str) -> list[str]:
    found = []
    if len(markdown) > MESSAGE_LIMIT:
        found.append(f"{len(markdown)} characters is over {MESSAGE_LIMIT}")
    if markdown.count("```") % 2:
        found.append("unbalanced code fence")
    if not markdown.strip():
        found.append("no visible text")
    return found


def escape(text: str) -> str:
    return SPECIAL.sub(r"\\\1", text)


def render(text: str) -> Rendered:
    """Markdown parts within Discord's limit; escaped plain text when the Markdown is broken."""
    found = ["unbalanced code fence"] if FENCE.sub("", text).count("```") else []
    if not found:
        parts = split_tokens(markdown_tokens(text), MESSAGE_LIMIT)
        found = [problem for part in parts for problem in problems(part)]
        if not found:
            return Rendered(number_parts(parts, "Markdown"))
    plain = split_tokens(text_tokens(escape(text)), MESSAGE_LIMIT)
    return Rendered(number_parts(plain, None), found)
