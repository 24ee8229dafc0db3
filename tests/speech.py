"""Speech made at test time with the embedded Piper voice, in any container PyAV writes."""

from __future__ import annotations

import io
import re
from functools import lru_cache

import av
import numpy as np

from deployments.audio import WHISPER_SAMPLE_RATE, Pcm, decode, encode
from deployments.settings import JuneSettings
from deployments.tts import Synthesizer, load_backend


@lru_cache(maxsize=1)
def synthesizer() -> Synthesizer:
    return Synthesizer(load_backend(JuneSettings()))


def say(text: str, audio_format: str = "ogg") -> bytes:
    return encode(synthesizer().synthesize(text), audio_format)


def encode_in_container(pcm: Pcm, container: str, codec: str) -> bytes:
    """Encode into containers June's own encoder does not write (m4a, webm), as phones send them."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=48_000, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=48_000)
        frame = av.AudioFrame.from_ndarray((pcm.samples * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = pcm.sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def silence(seconds: float, audio_format: str = "wav") -> bytes:
    return encode(Pcm(np.zeros(int(seconds * WHISPER_SAMPLE_RATE), np.float32), WHISPER_SAMPLE_RATE), audio_format)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def decoded_seconds(data: bytes) -> float:
    return decode(data).duration_s
