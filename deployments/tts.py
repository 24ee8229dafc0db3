"""TextToSpeech: a speech backend (Piper on CPU; NeMo plugs in beside it) behind a deployment."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from ray import serve

from deployments.audio import Pcm, StreamingEncoder, encode
from deployments.devices import resolve_device
from deployments.embedded import resolve_piper_voice
from deployments.sentences import speakable, split_sentences
from deployments.settings import JuneSettings

log = logging.getLogger(__name__)


class SpeechBackend(Protocol):
    """Turns one sentence into mono float32 audio at `sample_rate`."""

    sample_rate: int

    def synthesize_sentence(self, sentence: str) -> np.ndarray: ...


class PiperBackend:
    def __init__(self, voice: str, device: str = "cpu"):
        from piper import PiperVoice

        model_path = resolve_piper_voice(voice)
        self.voice = PiperVoice.load(model_path, use_cuda=device == "cuda")
        self.sample_rate = self.voice.config.sample_rate
        log.info("piper voice %s loaded (%d Hz)", model_path.name, self.sample_rate)

    def synthesize_sentence(self, sentence: str) -> np.ndarray:
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(sentence)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def load_backend(settings: JuneSettings) -> SpeechBackend:
    device = resolve_device(settings.tts_device)
    if settings.tts_backend == "piper":
        return PiperBackend(settings.tts_voice, device)
    if settings.tts_backend == "nemo":
        from deployments.nemo_tts import NemoBackend

        return NemoBackend(settings.tts_nemo_spectrogram, settings.tts_nemo_vocoder, device)
    raise ValueError(f"unknown TTS backend {settings.tts_backend!r}")


class Synthesizer:
    """Splits text into sentences, speaks each with the backend, and encodes the whole."""

    def __init__(self, backend: SpeechBackend, sentence_pause_s: float = 0.15):
        self.backend = backend
        self.pause = np.zeros(int(sentence_pause_s * backend.sample_rate), np.float32)

    def synthesize(self, text: str) -> Pcm:
        pieces: list[np.ndarray] = []
        for sentence in split_sentences(speakable(text)):
            audio = self.backend.synthesize_sentence(sentence)
            if audio.size:
                pieces.extend([audio, self.pause] if pieces else [audio])
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return Pcm(samples, self.backend.sample_rate)

    def speak(self, text: str, audio_format: str) -> bytes:
        return encode(self.synthesize(text), audio_format)

    def stream(self, text: str, audio_format: str) -> Iterator[bytes]:
        """The same speech as `speak`, as bytes sent while the next sentence is synthesized."""
        encoder = StreamingEncoder(audio_format, self.backend.sample_rate)
        spoken = False
        for sentence in split_sentences(speakable(text)):
            audio = self.backend.synthesize_sentence(sentence)
            if audio.size:
                if chunk := encoder.feed(np.concatenate([self.pause, audio]) if spoken else audio):
                    yield chunk
                spoken = True
        if chunk := encoder.close():
            yield chunk


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
class TextToSpeech:
    def __init__(self, settings: JuneSettings):
        self.synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)

    def speak(self, text: str, audio_format: str = "ogg") -> bytes:
        return self.synthesizer.speak(text, audio_format)

    def speak_stream(self, text: str, audio_format: str = "ogg") -> Iterator[bytes]:
        yield from self.synthesizer.stream(text, audio_format)

    def check_health(self) -> None:
        """Answering at all is the check: the voice loaded in __init__ or the replica never started."""
