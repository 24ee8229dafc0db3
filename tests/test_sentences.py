from __future__ import annotations

from speech.sentences import MAX_SENTENCE_CHARS, SentenceBuffer, ends_a_clause, speech_pieces, split_sentences
from speech.spoken import for_speech


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


def test_for_speech_drops_markdown() -> None:
    assert for_speech("**Bold** and `code`\n# Title\n- item") == "Bold and code\nTitle\nitem"


def test_first_piece_may_end_at_a_clause_so_speech_starts_sooner() -> None:
    buffer = SentenceBuffer(first_clause_chars=20)
    released = []
    for token in "Paris is the capital of France, and it is also its largest city, by far. Yes".split(" "):
        released += buffer.feed(token + " ")
    assert released == ["Paris is the capital of France,", "and it is also its largest city, by far."]
    assert buffer.flush() == ["Yes"]


def test_short_first_clauses_wait_for_more_text() -> None:
    buffer = SentenceBuffer(first_clause_chars=20)
    assert buffer.feed("Oh, well, ") == []
    assert buffer.feed("that is a hard one. ") == ["Oh, well, that is a hard one."]


def test_characters_no_voice_can_say_are_dropped() -> None:
    assert for_speech("hi\x00 there\x1b") == "hi there"
    assert for_speech("\ud800ok\uffff") == "ok" and for_speech("\x00\x07") == ""
    assert for_speech("two\nlines\tand tabs") == "two\nlines and tabs"


def test_whole_texts_are_spoken_first_clause_first() -> None:
    text = "Right now it's fourteen degrees and cloudy, with light rain later. Take a coat, just in case."
    assert speech_pieces(text) == ["Right now it's fourteen degrees and cloudy,", "with light rain later.",
                                   "Take a coat, just in case."]
    assert speech_pieces("Okay, the lights are off.") == ["Okay, the lights are off."]  # "Okay" is too short alone
    assert speech_pieces("") == []


def test_a_first_clause_is_part_of_a_sentence_not_one() -> None:
    buffer = SentenceBuffer()
    pieces = [*buffer.feed("There are 366 days in a leap year, because"), *buffer.feed(" February gets a 29th day. "),
              *buffer.flush()]
    assert pieces == ["There are 366 days in a leap year,", "because February gets a 29th day."]
    assert [ends_a_clause(piece) for piece in pieces] == [True, False]
