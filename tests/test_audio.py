from __future__ import annotations

import numpy as np
import pytest

from speech.audio import (
    AUDIO_FORMATS,
    STREAMABLE_FORMATS,
    AudioTooLong,
    Pcm,
    StreamingEncoder,
    UndecodableAudio,
    decode,
    encode,
)


def tone(seconds: float = 1.0, rate: int = 22_050) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


@pytest.mark.parametrize("audio_format", [f for f in AUDIO_FORMATS if f != "pcm"])
def test_every_format_round_trips_with_its_duration(audio_format: str) -> None:
    decoded = decode(encode(tone(1.0), audio_format))
    assert decoded.sample_rate == 16_000
    assert decoded.duration_s == pytest.approx(1.0, abs=0.1)
    assert decoded.samples.dtype == np.float32 and np.abs(decoded.samples).max() <= 1.0


def test_ogg_is_opus_at_48_khz() -> None:
    import io

    import av

    with av.open(io.BytesIO(encode(tone(), "ogg"))) as container:
        stream = container.streams.audio[0]
        assert (container.format.name, stream.codec_context.name, stream.sample_rate) == ("ogg", "opus", 48_000)


def test_pcm_is_raw_s16() -> None:
    assert len(encode(tone(1.0, 16_000), "pcm")) == 2 * 16_000


@pytest.mark.parametrize("data", [b"", b"RIFF", b"OggS" + bytes(100), bytes(range(256)) * 10])
def test_garbage_is_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableAudio):
        decode(data)


def test_duration_limit_stops_decoding_early() -> None:
    with pytest.raises(AudioTooLong, match="longer than 2 s"):
        decode(encode(tone(5.0), "ogg"), max_seconds=2)


def test_unknown_output_format() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        encode(tone(), "midi")


@pytest.mark.parametrize("audio_format", [f for f in STREAMABLE_FORMATS if f != "pcm"])
def test_a_streamed_encoding_has_bytes_before_it_ends_and_decodes_whole(audio_format: str) -> None:
    encoder = StreamingEncoder(audio_format, 22_050)
    first = encoder.feed(tone(1.0).samples)
    rest = [encoder.feed(tone(1.0).samples), encoder.close()]
    assert len(first) > 1000, "the first second's audio is held back until the end"
    assert decode(first + b"".join(rest)).duration_s == pytest.approx(2.0, abs=0.1)


def test_streamed_wav_has_an_open_length_header_and_pcm_is_raw() -> None:
    wav = StreamingEncoder("wav", 22_050)
    body = wav.feed(tone(0.5).samples) + wav.close()
    assert body[4:8] == body[40:44] == b"\xff\xff\xff\xff" and len(body) == 44 + 2 * 11_025
    pcm = StreamingEncoder("pcm", 22_050)
    assert len(pcm.feed(tone(0.5).samples) + pcm.close()) == 2 * 11_025


def test_a_container_that_needs_seeking_is_not_streamed() -> None:
    with pytest.raises(ValueError, match="cannot be streamed"):
        StreamingEncoder("m4a", 22_050)
