"""Spoken test input made with Piper at run time, as OGG/Opus voice notes like Telegram sends."""

from __future__ import annotations

from typing import NamedTuple

from common.settings import JuneSettings
from speech.audio import encode
from speech.synthesizer import Synthesizer, load_backend

# Each lasts 2.5-3.4 s when spoken by the embedded Piper voice (about 2.9 s on average).
QUESTIONS = (
    "Hey June, what is the capital of France?",
    "How many days are there in a leap year, and why?",
    "Can you tell me a fun fact about the ocean, please?",
    "What is the name of the tallest mountain in the world?",
    "Who wrote the play Romeo and Juliet, and when was it written?",
    "I'm hungry. What should I cook for dinner tonight?",
    "Why is the sky blue during the day but red at sunset?",
    "What is the boiling point of water in degrees Fahrenheit?",
)


class SpeechSample(NamedTuple):
    """What was said, the voice note saying it, and how long it lasts."""

    text: str
    ogg: bytes
    duration_s: float


def speak_samples(texts: tuple[str, ...] | list[str], settings: JuneSettings) -> list[SpeechSample]:
    """Speak each text with the configured Piper voice and encode it as OGG/Opus."""
    synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)
    samples = []
    for text in texts:
        pcm = synthesizer.synthesize(text)
        samples.append(SpeechSample(text, encode(pcm, "ogg"), pcm.duration_s))
    return samples
