"""Audio in and out with PyAV: decode anything FFmpeg reads, encode OGG/Opus, WAV, MP3, FLAC."""

from __future__ import annotations

import io
import struct
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


# Containers whose bytes can be sent as they are muxed (MP4 writes its index last; WebM holds whole clusters).
STREAMABLE_FORMATS = ("ogg", "wav", "pcm", "mp3", "flac", "aac")
_OGG_PAGE_US = 100_000  # OGG pages of 0.1 s: each sentence leaves the muxer when it is encoded, not a second later


class _Sink:
    """A write-only file for PyAV: bytes collect until taken."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        data, self.data = bytes(self.data), bytearray()
        return data


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header whose lengths are left open (0xFFFFFFFF), as streamed WAV is sent."""
    open_length = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", open_length) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", open_length))


class StreamingEncoder:
    """Mono PCM in as it is made, encoded bytes out as soon as the container has them, so a response body can
    start with the first sentence while later ones are still being synthesized."""

    def __init__(self, audio_format: str, sample_rate: int):
        if audio_format not in STREAMABLE_FORMATS:
            raise ValueError(f"{audio_format!r} cannot be streamed; use one of {', '.join(STREAMABLE_FORMATS)}")
        self.format, self.sample_rate = audio_format, sample_rate
        self._sink = _Sink()
        self._container = None
        if audio_format == "wav":
            self._sink.write(streaming_wav_header(sample_rate))
        elif audio_format != "pcm":
            container_format, codec, rate = _ENCODINGS[audio_format]
            options = {"page_duration": str(_OGG_PAGE_US)} if container_format == "ogg" else {}
            self._container = av.open(self._sink, mode="w", format=container_format, options=options)
            self._stream = self._container.add_stream(codec, rate=rate or sample_rate, layout="mono")
            self._resampler = av.AudioResampler(format=self._stream.codec_context.format.name, layout="mono",
                                                rate=rate or sample_rate)

    def feed(self, samples: np.ndarray) -> bytes:
        """Encode float32 samples at the encoder's sample rate; return the bytes ready so far."""
        pcm16 = to_int16(samples)
        if self._container is None:
            self._sink.write(pcm16.tobytes())
        elif pcm16.size:
            frame = av.AudioFrame.from_ndarray(pcm16.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self.sample_rate
            self._mux(self._resampler.resample(frame))
        return self._sink.take()

    def close(self) -> bytes:
        """Flush the encoder and end the container; return the last bytes."""
        if self._container is not None:
            self._mux(self._resampler.resample(None))
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
        return self._sink.take()

    def _mux(self, frames: list) -> None:
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
