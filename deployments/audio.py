"""Audio in and out with PyAV: decode anything FFmpeg reads, encode OGG/Opus, WAV, MP3, FLAC."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import av
import numpy as np

WHISPER_SAMPLE_RATE = 16_000
OPUS_SAMPLE_RATE = 48_000


class AudioError(Exception):
    """Base for audio a client sent that June cannot use."""


class UndecodableAudio(AudioError):
    """The bytes are empty, corrupt, or hold no audio stream."""


class AudioTooLong(AudioError):
    """The audio lasts longer than the configured limit."""


@dataclass(frozen=True)
class Pcm:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes, *, sample_rate: int = WHISPER_SAMPLE_RATE, max_seconds: float | None = None) -> Pcm:
    """Decode and resample any container/codec PyAV understands to mono float32.

    Decoding stops as soon as `max_seconds` is exceeded, so an hour-long upload costs little.
    """
    if not data:
        raise UndecodableAudio("the audio is empty")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise UndecodableAudio("the file has no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    decoded += len(chunk)
                if max_seconds is not None and decoded > max_seconds * sample_rate:
                    raise AudioTooLong(f"the audio is longer than {max_seconds:g} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise UndecodableAudio(f"the audio could not be decoded ({type(error).__name__})") from error
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise UndecodableAudio("the file holds no audio samples")
    return Pcm(np.clip(samples, -1.0, 1.0), sample_rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def encode_wav(pcm: Pcm) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(pcm.sample_rate)
        out.writeframes(to_int16(pcm.samples).tobytes())
    return buffer.getvalue()


# format name -> (container, codec, output sample rate or None to keep the input's)
_ENCODINGS: dict[str, tuple[str, str, int | None]] = {
    "ogg": ("ogg", "libopus", OPUS_SAMPLE_RATE),
    "mp3": ("mp3", "libmp3lame", None),
    "flac": ("flac", "flac", None),
    "aac": ("adts", "aac", None),
    "m4a": ("mp4", "aac", None),
    "webm": ("webm", "libopus", OPUS_SAMPLE_RATE),
}
MEDIA_TYPES = {
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
    "pcm": "audio/pcm",
}
AUDIO_FORMATS = tuple(MEDIA_TYPES)


def encode(pcm: Pcm, audio_format: str) -> bytes:
    """Encode mono PCM as `audio_format` (one of AUDIO_FORMATS).

    `ogg` is Opus in OGG at 48 kHz, as Telegram voice notes are; `pcm` is raw s16le.
    """
    if audio_format == "wav":
        return encode_wav(pcm)
    if audio_format == "pcm":
        return to_int16(pcm.samples).tobytes()
    if audio_format not in _ENCODINGS:
        raise ValueError(f"unsupported audio format {audio_format!r}")
    container_format, codec, rate = _ENCODINGS[audio_format]
    rate = rate or pcm.sample_rate
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(to_int16(pcm.samples).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = pcm.sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
