"""The engines inside the deployments, without Ray: real Whisper tiny.en and the real Piper voice."""

from __future__ import annotations

import numpy as np
import pytest

from common.settings import JuneSettings
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, UndecodableAudio, decode
from speech.synthesizer import Synthesizer
from speech.transcriber import Transcriber
from tests.speech import say, silence, synthesizer, words


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(JuneSettings(stt_engine="whisper"))


def test_cpu_uses_int8(transcriber: Transcriber) -> None:
    assert (transcriber.engine.device, transcriber.engine.compute_type) == ("cpu", "int8")


def test_piper_speech_is_transcribed_back(transcriber: Transcriber) -> None:
    transcript = transcriber.transcribe_bytes(say("The quick brown fox jumps over the lazy dog."))
    assert {"quick", "brown", "fox", "lazy", "dog"} <= words(transcript.text)
    assert transcript.language == "en" and transcript.segments
    assert transcript.segments[0].start >= 0 and transcript.segments[-1].end <= transcript.duration_s + 0.5


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_silence_and_hiss_give_an_empty_transcript(transcriber: Transcriber, noise: float) -> None:
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(3 * WHISPER_SAMPLE_RATE) * noise).astype(np.float32)
    assert transcriber.transcribe(Pcm(samples, WHISPER_SAMPLE_RATE)).text == ""
    assert transcriber.transcribe_bytes(silence(1.0)).segments == []


def test_wrong_sample_rate_is_refused(transcriber: Transcriber) -> None:
    with pytest.raises(ValueError, match="16000"):
        transcriber.transcribe(Pcm(np.zeros(100, np.float32), 8000))


def test_synthesizer_speaks_each_sentence_with_a_pause() -> None:
    one = synthesizer().synthesize("Hello there.")
    two = synthesizer().synthesize("Hello there. Hello there.")
    assert one.sample_rate == 22_050 and one.duration_s > 0.4
    # Piper samples phoneme durations with noise, so lengths vary by a few percent between runs.
    assert two.duration_s == pytest.approx(2 * one.duration_s + 0.15, rel=0.15)


def test_speech_streams_each_sentence_before_the_next_is_synthesized() -> None:
    """Each sentence's audio leaves `stream` before the backend is asked for the next one."""
    events: list[str] = []
    real = synthesizer()

    class RecordingBackend:
        sample_rate = real.backend.sample_rate

        def synthesize_sentence(self, sentence: str) -> np.ndarray:
            events.append(f"synthesize {sentence}")
            return real.backend.synthesize_sentence(sentence)

    streaming = Synthesizer(RecordingBackend())
    chunks = []
    for chunk in streaming.stream("The first sentence. The second one. And a third.", "ogg"):
        events.append("chunk")
        chunks.append(chunk)
    assert events[:4] == ["synthesize The first sentence.", "chunk", "synthesize The second one.", "chunk"]
    whole = streaming.synthesize("The first sentence. The second one. And a third.").duration_s
    assert decode(b"".join(chunks)).duration_s == pytest.approx(whole, rel=0.2)


def test_markdown_is_not_read_out() -> None:
    """Piper samples each phoneme's length (one "Hello world." in a CI run took 1.11 s against the usual
    0.82 s), so the median of three; markup read out ("asterisk asterisk …") would triple the length."""
    def median_seconds(text: str) -> float:
        return float(np.median([synthesizer().synthesize(text).duration_s for _ in range(3)]))

    assert median_seconds("**Hello** `world`.") == pytest.approx(median_seconds("Hello world."), rel=0.2)


def test_nothing_to_say_is_no_audio() -> None:
    assert synthesizer().synthesize("  ").samples.size == 0
    with pytest.raises(UndecodableAudio):
        decode(synthesizer().speak("", "wav"))
