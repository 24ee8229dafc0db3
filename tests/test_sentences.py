from __future__ import annotations

from deployments.sentences import MAX_SENTENCE_CHARS, SentenceBuffer, speakable, split_sentences


def test_splits_on_sentence_ends_but_not_abbreviations_or_decimals() -> None:
    text = "Hello there. Dr. Smith paid $3.50 today! Is it ok? Yes."
    assert split_sentences(text) == ["Hello there.", "Dr. Smith paid $3.50 today!", "Is it ok?", "Yes."]


def test_paragraphs_and_list_items_end_sentences() -> None:
    assert split_sentences("Intro\n\nBody text\n- one\n- two") == ["Intro", "Body text", "- one", "- two"]


def test_long_sentences_are_cut_at_commas_then_spaces() -> None:
    pieces = split_sentences(", ".join(["word " * 10] * 20))
    assert len(pieces) > 1 and all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    unbroken = split_sentences("x" * (MAX_SENTENCE_CHARS * 2 + 5))
    assert [len(p) for p in unbroken] == [MAX_SENTENCE_CHARS, MAX_SENTENCE_CHARS, 5]


def test_empty_text_has_no_sentences() -> None:
    assert split_sentences("") == [] and split_sentences("   \n ") == []


def test_buffer_releases_sentences_only_when_complete() -> None:
    buffer = SentenceBuffer()
    released = []
    for token in "The capital is Paris. Dr. Who is 3.5 m tall! And".split(" "):
        released += buffer.feed(token + " ")
    assert released == ["The capital is Paris.", "Dr. Who is 3.5 m tall!"]
    assert buffer.flush() == ["And"] and buffer.flush() == []


def test_speakable_drops_markdown() -> None:
    assert speakable("**Bold** and `code`\n# Title\n- item") == "Bold and code\nTitle\nitem"
