"""Speech from text: a backend speaks one sentence (Piper on CPU, NeMo beside it); the `Synthesizer` splits,
pauses and encodes, whole or streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from common.settings import JuneSettings
from models.devices import resolve_device
from speech.audio import Pcm, StreamingEncoder, encode
from speech.sentences import speech_pieces, split_sentences
from speech.spoken import for_speech


class SpeechBackend(Protocol):
    """Turns one sentence into mono float32 audio at `sample_rate`."""

    sample_rate: int

    def synthesize_sentence(self, sentence: str) -> np.ndarray: ...


def load_backend(settings: JuneSettings) -> SpeechBackend:
    device = resolve_device(settings.tts_device)
    if settings.tts_backend == "piper":
        from speech.piper import PiperBackend

        return PiperBackend(settings.tts_voice, device)
    if settings.tts_backend == "nemo":
        from speech.nemo import NemoBackend

        return NemoBackend(settings.tts_nemo_spectrogram, settings.tts_nemo_vocoder, device)
    raise ValueError(f"unknown TTS backend {settings.tts_backend!r}")


class Synthesizer:
    """Splits text into sentences, speaks each with the backend, and encodes the whole."""

    def __init__(self, backend: SpeechBackend, sentence_pause_s: float = 0.15):
        self.backend = backend
        self.pause = np.zeros(int(sentence_pause_s * backend.sample_rate), np.float32)

    def synthesize(self, text: str) -> Pcm:
        pieces = list(self._spoken(split_sentences(for_speech(text))))
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return Pcm(samples, self.backend.sample_rate)

    def speak(self, text: str, audio_format: str) -> bytes:
        return encode(self.synthesize(text), audio_format)

    def stream(self, text: str, audio_format: str) -> Iterator[bytes]:
        """The speech as bytes sent while the next sentence is synthesized; the first sentence's first clause
        goes on its own, for sooner first audio."""
        encoder = StreamingEncoder(audio_format, self.backend.sample_rate)
        for audio in self._spoken(speech_pieces(for_speech(text))):
            if chunk := encoder.feed(audio):
                yield chunk
        if chunk := encoder.close():
            yield chunk

    def _spoken(self, sentences: list[str]) -> Iterator[np.ndarray]:
        """Each sentence's audio as it is synthesized, the ones after the first led by the pause."""
        spoken = False
        for sentence in sentences:
            audio = self.backend.synthesize_sentence(sentence)
            if audio.size:
                yield np.concatenate([self.pause, audio]) if spoken else audio
                spoken = True
