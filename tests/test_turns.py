"""Turn detection on a live stream: the real Silero model on speech made by the real Piper voice."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import get_vad_model

from speech.audio import WHISPER_SAMPLE_RATE, decode
from speech.turns import FRAME_SAMPLES, SpeechProbability, TurnDetector, TurnRules
from tests.speech import say

CHUNK = WHISPER_SAMPLE_RATE // 10  # what the page sends: 100 ms


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    return decode(say("What is the weather in Paris today?", "wav")).samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * WHISPER_SAMPLE_RATE), np.float32)


def stream(detector: TurnDetector, audio: np.ndarray) -> list[tuple[str, float, float]]:
    """(event, seconds into the stream, turn length) for each event, fed as the microphone would."""
    events = []
    for start in range(0, len(audio), CHUNK):
        for event in detector.feed(audio[start:start + CHUNK]):
            events.append((event.kind, (start + CHUNK) / WHISPER_SAMPLE_RATE, event.duration_s))
    return events


def test_streamed_scores_equal_faster_whispers_whole_file_scores(question: np.ndarray) -> None:
    audio = np.concatenate([silence(0.5), question, silence(1.0)])
    audio = audio[:len(audio) // FRAME_SAMPLES * FRAME_SAMPLES]
    whole = get_vad_model()(audio).ravel()
    speech = SpeechProbability()
    streamed = np.concatenate([speech(audio[i:i + 4 * FRAME_SAMPLES]) for i in range(0, len(audio), 4 * FRAME_SAMPLES)])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert whole.max() > 0.9 and whole[:10].max() < 0.2  # speech is found, the lead-in silence is not speech


def test_one_question_is_one_turn_that_ends_after_the_pause(question: np.ndarray) -> None:
    rules = TurnRules(end_silence_ms=700)
    events = stream(TurnDetector(rules), np.concatenate([silence(0.5), question, silence(1.5)]))
    assert [kind for kind, _, _ in events] == ["speech_started", "turn_ended"]
    question_s = len(question) / WHISPER_SAMPLE_RATE  # Piper's clip ends with ~0.2 s of its own quiet
    (_, started_at, _), (_, ended_at, length) = events
    assert 0.5 < started_at < 1.2
    assert 0.5 + question_s + 0.3 <= ended_at <= 0.5 + question_s + 1.0  # the pause, not the stream's end, ends it
    assert question_s <= length <= question_s + 1.0


def test_silence_and_quiet_noise_are_no_turn() -> None:
    noise = np.random.default_rng(7).normal(0, 0.003, 5 * WHISPER_SAMPLE_RATE).astype(np.float32)
    assert stream(TurnDetector(), np.concatenate([silence(2), noise])) == []


def test_two_questions_with_a_pause_are_two_turns(question: np.ndarray) -> None:
    events = stream(TurnDetector(), np.concatenate([question, silence(1.5), question, silence(1.5)]))
    assert [kind for kind, _, _ in events] == ["speech_started", "turn_ended"] * 2


def test_a_turn_that_never_pauses_is_cut_at_the_limit(question: np.ndarray) -> None:
    talking = np.concatenate([question] * 4)
    events = stream(TurnDetector(TurnRules(max_turn_s=3.0)), talking)
    ended = [length for kind, _, length in events if kind == "turn_ended"]
    assert ended and all(length <= 3.5 for length in ended)


def test_chunks_of_any_size_give_the_same_turns(question: np.ndarray) -> None:
    audio = np.concatenate([silence(0.3), question, silence(1.2)])
    expected = [(e.kind, e.duration_s) for e in TurnDetector().feed(audio)]
    detector = TurnDetector()
    odd = [(e.kind, e.duration_s) for start in range(0, len(audio), 777) for e in detector.feed(audio[start:start + 777])]
    assert odd == expected and len(expected) == 2


def test_a_pause_is_reported_and_speech_after_it_resumes_the_same_turn() -> None:
    halves = [decode(say(text, "wav")).samples for text in ("What is the capital", "of France?")]
    audio = np.concatenate([silence(0.5), halves[0], silence(0.4), halves[1], silence(1.5)])
    detector = TurnDetector(TurnRules(pause_ms=300))
    events = [event for start in range(0, len(audio), CHUNK) for event in detector.feed(audio[start:start + CHUNK])]
    kinds = [event.kind for event in events]
    assert kinds == ["speech_started", "paused", "resumed", "paused", "turn_ended"], kinds
    first_pause, last_pause, ended = events[1], events[3], events[4]
    assert first_pause.duration_s < len(halves[0]) / WHISPER_SAMPLE_RATE + 0.8  # the first half only
    assert np.array_equal(ended.audio[:len(last_pause.audio)], last_pause.audio)  # the turn is the last pause's + quiet
    assert ended.duration_s - last_pause.duration_s < 0.5


def test_without_a_pause_length_no_pause_is_reported(question: np.ndarray) -> None:
    events = stream(TurnDetector(TurnRules(pause_ms=0)), np.concatenate([question, silence(0.4), question, silence(1.5)]))
    assert [kind for kind, _, _ in events] == ["speech_started", "turn_ended"]
