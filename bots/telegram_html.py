"""Telegram's HTML parse mode: the model's light Markdown to HTML, the platform's rules, splitting."""

from __future__ import annotations

import html
import re

from bots.rendering import Rendered, number_parts
from bots.splitting import Token, split_tokens, text_tokens

MESSAGE_LIMIT = 4096
SIMPLE_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler", "code", "pre", "blockquote"}
LITERAL_TAG = re.compile(r"</?(?:b|strong|i|em|u|ins|s|strike|del|tg-spoiler|code|pre|blockquote)>|<a href=\"[^\"<>]*\">|</a>")
FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n?(.*?)```", re.DOTALL)
INLINE = [
    (re.compile(r"`([^`\n]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"<b>\1</b>"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"<s>\1</s>"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])"), r"<i>\1</i>"),
    (re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"), r"<i>\1</i>"),
    (re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)\"<>]+)\)"), r'<a href="\2">\1</a>'),
]
MARKUP = re.compile(r"<[^<>]*>|&[^;\s<>&]*;|[^<>&]+|[<>&]")
TAG = re.compile(r"<(/?)([a-z-]+)((?:\s+[a-z-]+=\"[^\"]*\")*)\s*>")
ATTRIBUTE = re.compile(r"([a-z-]+)=\"([^\"]*)\"")
ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def to_html(text: str) -> str:
    """Code fences → <pre><code>, inline Markdown → tags; Telegram tags the model wrote pass through."""
    pieces: list[str] = []
    cursor = 0
    for fence in FENCE.finditer(text):
        pieces.append(_inline_html(text[cursor:fence.start()]))
        language = f' class="language-{fence.group(1)}"' if fence.group(1) else ""
        pieces.append(f"<pre><code{language}>{html.escape(fence.group(2), quote=False)}</code></pre>")
        cursor = fence.end()
    pieces.append(_inline_html(text[cursor:]))
    return "".join(pieces)


def _inline_html(text: str) -> str:
    out: list[str] = []
    cursor = 0
    for tag in LITERAL_TAG.finditer(text):
        out.append(_markdown(html.escape(text[cursor:tag.start()], quote=False)))
        out.append(tag.group(0))
        cursor = tag.end()
    out.append(_markdown(html.escape(text[cursor:], quote=False)))
    return "".join(out)


def _markdown(escaped: str) -> str:
    for pattern, replacement in INLINE:
        escaped = pattern.sub(replacement, escaped)
    return escaped


def problems(markup: str, *, check_length: bool = True) -> list[str]:
    """Everything Telegram would reject in `markup`, as short descriptions (empty when it is valid)."""
    found: list[str] = []
    stack: list[str] = []
    visible = 0
    for match in MARKUP.finditer(markup):
        piece = match.group(0)
        if piece.startswith("<") and len(piece) > 1:
            found.extend(_tag_problems(piece, stack))
        elif piece.startswith("&") and len(piece) > 1:
            if not ENTITY.fullmatch(piece):
                found.append(f"unsupported entity {piece[:12]!r}")
            visible += 1
        elif piece in "<>&":
            found.append(f"unescaped {piece!r}")
        else:
            visible += utf16_length(piece)
    found.extend(f"unclosed <{name}>" for name in reversed(stack))
    if check_length and visible > MESSAGE_LIMIT:
        found.append(f"{visible} characters is over {MESSAGE_LIMIT}")
    if check_length and not html.unescape(re.sub(r"<[^<>]*>", "", markup)).strip():
        found.append("no visible text")
    return found


def _tag_problems(tag: str, stack: list[str]) -> list[str]:
    parsed = TAG.fullmatch(tag)
    if not parsed:
        return [f"malformed tag {tag[:24]!r}"]
    closing, name, attributes = parsed.group(1), parsed.group(2), dict(ATTRIBUTE.findall(parsed.group(3)))
    if name not in SIMPLE_TAGS | {"a", "span", "tg-emoji"}:
        return [f"tag <{name}> is not allowed"]
    if closing:
        if not stack or stack[-1] != name:
            return [f"</{name}> closes {'<' + stack[-1] + '>' if stack else 'nothing'}"]
        stack.pop()
        return []
    if stack and stack[-1] in ("code", "pre") and not (stack[-1] == "pre" and name == "code"):
        return [f"<{name}> inside <{stack[-1]}>"]
    if not _attributes_allowed(name, attributes):
        return [f"attributes of <{name}> are not allowed"]
    stack.append(name)
    return []


def _attributes_allowed(name: str, attributes: dict[str, str]) -> bool:
    if name == "a":
        return set(attributes) == {"href"} and bool(attributes["href"])
    if name == "span":
        return attributes == {"class": "tg-spoiler"}
    if name == "code":
        return not attributes or (set(attributes) == {"class"} and attributes["class"].startswith("language-"))
    if name == "blockquote":
        return set(attributes) <= {"expandable"}
    if name == "tg-emoji":
        return set(attributes) == {"emoji-id"}
    return not attributes


def html_tokens(markup: str) -> list[Token]:
    tokens: list[Token] = []
    for match in MARKUP.finditer(markup):
        piece = match.group(0)
        tag = TAG.fullmatch(piece) if piece.startswith("<") else None
        if tag and tag.group(1):
            tokens.append(Token(piece, closes=True))
        elif tag:
            tokens.append(Token(piece, opens=(piece, f"</{tag.group(2)}>")))
        elif piece.startswith("&") and len(piece) > 1:
            tokens.append(Token(piece))
        else:
            tokens.extend(text_tokens(piece))
    return tokens


def render(text: str) -> Rendered:
    """HTML parts within Telegram's limit; plain-text parts when the HTML breaks Telegram's rules."""
    markup = to_html(text)
    found = problems(markup, check_length=False)
    if not found:
        parts = split_tokens(html_tokens(markup), MESSAGE_LIMIT, utf16_length)
        found = [problem for part in parts for problem in problems(part)]
        if not found:
            return Rendered(number_parts(parts, "HTML"))
    plain = split_tokens(text_tokens(text), MESSAGE_LIMIT, utf16_length)
    return Rendered(number_parts(plain, None), found)
