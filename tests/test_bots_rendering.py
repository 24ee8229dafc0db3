"""Rendering without a platform: splitting, Telegram's HTML rules, Discord's Markdown, the plain fallback."""

from __future__ import annotations

import re

from bots import discord_markdown, telegram_html
from bots.splitting import split_tokens, text_tokens

TEN_THOUSAND = "\n\n".join(
    f"Paragraph {n} talks about **important** things & <b>tags</b>. It has a second sentence! And a third one?"
    * 4 for n in range(25)
) + "\n\n```python\n" + "\n".join(f"print({n} < {n + 1})" for n in range(250)) + "\n```\nThe end."


def test_a_ten_thousand_character_answer_splits_into_valid_telegram_parts() -> None:
    assert len(TEN_THOUSAND) > 10_000
    rendered = telegram_html.render(TEN_THOUSAND)
    assert not rendered.fell_back and rendered.parts[0].count == len(rendered.parts) > 2
    for part in rendered.parts:
        assert telegram_html.utf16_length(part.text) <= telegram_html.MESSAGE_LIMIT
        assert telegram_html.problems(part.text) == []
    texts = [p.text for p in rendered.parts]
    prose = [t for t in texts if "<pre>" not in t]
    assert all(t.endswith(("?", "!", ".", "</b>")) for t in prose)  # cut at sentence or paragraph ends
    code_parts = [t for t in texts if "<pre>" in t]
    assert len(code_parts) >= 2 and all(t.count("<pre>") == t.count("</pre>") for t in code_parts)
    joined = "".join(re.sub(r"<[^>]+>", "", t) for t in texts)
    assert all(f"print({n} &lt; {n + 1})" in joined for n in range(250))  # nothing lost


def test_broken_html_falls_back_to_plain_text() -> None:
    for hostile in ("<b>bold <i>crossed</b></i>", "an <b>unclosed tag", "<b>ok</b> <i>",
                    '<a href="">empty link</a>', "<code><b>nested</b></code>"):
        rendered = telegram_html.render(hostile)
        assert rendered.fell_back, hostile
        assert [p.parse_mode for p in rendered.parts] == [None] and rendered.parts[0].text == hostile


def test_markdown_and_stray_characters_become_safe_html() -> None:
    rendered = telegram_html.render("Use `a<b` and **bold**, _it_ & [docs](https://example.org) <3")
    assert rendered.parts[0].text == ('Use <code>a&lt;b</code> and <b>bold</b>, <i>it</i> &amp; '
                                      '<a href="https://example.org">docs</a> &lt;3')
    assert telegram_html.problems("a < b") == ["unescaped '<'"]
    assert telegram_html.problems("a &nbsp; b") == ["unsupported entity '&nbsp;'"]
    assert telegram_html.render("<script>x</script>").parts[0].text == "&lt;script&gt;x&lt;/script&gt;"


def test_discord_parts_keep_code_fences_balanced() -> None:
    rendered = discord_markdown.render(TEN_THOUSAND)
    assert not rendered.fell_back and len(rendered.parts) > 5
    for part in rendered.parts:
        assert len(part.text) <= discord_markdown.MESSAGE_LIMIT and part.text.count("```") % 2 == 0
    broken = discord_markdown.render("```python\nnever closed")
    assert broken.fell_back and broken.parts[0].parse_mode is None and "\\`" in broken.parts[0].text


def test_plain_splitting_prefers_sentences_and_cuts_a_giant_word() -> None:
    parts = split_tokens(text_tokens("One two. Three four. Five six."), 15)
    assert parts == ["One two.", "Three four.", "Five six."]
    assert split_tokens(text_tokens("x" * 45), 20) == ["x" * 20, "x" * 20, "x" * 5]
