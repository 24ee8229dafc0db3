"""Speech made at test time with the embedded Piper voice, in any container PyAV writes."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from common.settings import JuneSettings
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, decode, encode
from speech.synthesizer import Synthesizer, load_backend


@lru_cache(maxsize=1)
def synthesizer() -> Synthesizer:
    return Synthesizer(load_backend(JuneSettings()))


def say(text: str, audio_format: str = "ogg") -> bytes:
    return encode(synthesizer().synthesize(text), audio_format)


def silence(seconds: float, audio_format: str = "wav") -> bytes:
    return encode(Pcm(np.zeros(int(seconds * WHISPER_SAMPLE_RATE), np.float32), WHISPER_SAMPLE_RATE), audio_format)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def decoded_seconds(data: bytes) -> float:
    return decode(data).duration_s
