"""Moonshine tiny-en as June's English speech to text: the real model from moonshine-voice 0.0.4, real Piper speech."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from common.settings import JuneSettings
from models.embedded import ModelCorrupt, ModelNotFound
from models.moonshine import TINY_EN, check_pinned, resolve_moonshine
from speech.audio import WHISPER_SAMPLE_RATE, AudioTooLong, Pcm, UndecodableAudio, decode, encode
from speech.moonshine import MAX_CHUNK_S
from speech.transcriber import Transcriber, choose_engine, engine_label
from tests.speech import say, silence, synthesizer, words


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(JuneSettings())


def test_auto_takes_moonshine_for_english_and_whisper_for_the_rest(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_engine(JuneSettings()) == "moonshine"
    assert engine_label(JuneSettings()) == "Moonshine tiny-en"
    assert choose_engine(JuneSettings(stt_model="base")) == "whisper"  # multilingual
    assert choose_engine(JuneSettings(stt_model=str(tmp_path))) == "whisper"  # a model the user names
    assert engine_label(JuneSettings(stt_model=str(tmp_path / "large-v3"))) == "Whisper large-v3"
    assert choose_engine(JuneSettings(stt_engine="moonshine", stt_model="base")) == "moonshine"
    monkeypatch.setenv("JUNE_STT_ENGINE", "whisper")
    assert choose_engine(JuneSettings()) == "whisper"


def test_piper_speech_is_transcribed_back_and_timed(transcriber: Transcriber) -> None:
    assert transcriber.engine_name == "moonshine"
    transcript = transcriber.transcribe_bytes(say("The quick brown fox jumps over the lazy dog."))
    # Piper speaks each time a little differently, and tiny-en mishears a word of it now and then
    assert len({"quick", "brown", "fox", "lazy", "dog"} & words(transcript.text)) >= 4, transcript.text
    assert transcript.language == "en" and len(transcript.segments) == 1
    assert 0 <= transcript.segments[0].start < transcript.segments[0].end <= transcript.duration_s
    assert 0 < transcript.engine_ms < 5000


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_silence_and_hiss_give_an_empty_transcript(transcriber: Transcriber, noise: float) -> None:
    samples = (np.random.default_rng(0).standard_normal(3 * WHISPER_SAMPLE_RATE) * noise).astype(np.float32)
    assert transcriber.transcribe(Pcm(samples, WHISPER_SAMPLE_RATE)).text == ""
    empty = transcriber.transcribe_bytes(silence(1.0))
    assert (empty.text, empty.segments, empty.language) == ("", [], "en")


def test_long_speech_is_split_at_its_pauses(transcriber: Transcriber) -> None:
    sentences = [
        "The first thing I want to tell you about is the garden, where the roses are finally in bloom.",
        "After that we walked down to the harbour and watched the fishing boats come back in the evening light.",
        "Then it started to rain, so we ran all the way home and made a big pot of tomato soup.",
        "Tomorrow we will take the early train to the mountains and spend the whole day hiking.",
        "In the end everybody agreed that it had been the nicest holiday we have had in years.",
        "My sister has already started planning next summer, and she wants to go somewhere by the sea.",
        "I told her that I would be happy with any place that has good coffee and a quiet beach.",
    ]
    pause = np.zeros(WHISPER_SAMPLE_RATE // 2, np.float32)
    spoken = [decode(encode(synthesizer().synthesize(s), "wav")).samples for s in sentences]
    pcm = Pcm(np.concatenate([part for samples in spoken for part in (samples, pause)]), WHISPER_SAMPLE_RATE)
    assert pcm.duration_s > 2 * MAX_CHUNK_S
    transcript = transcriber.transcribe(pcm)
    assert len(transcript.segments) >= 3
    assert all(s.end - s.start <= MAX_CHUNK_S + 1 for s in transcript.segments)
    assert all(a.end <= b.start for a, b in zip(transcript.segments, transcript.segments[1:]))
    assert {"garden", "roses", "soup", "mountains", "holiday", "coffee", "beach"} <= words(transcript.text)


def test_corrupt_empty_and_too_long_audio_are_refused(transcriber: Transcriber) -> None:
    with pytest.raises(UndecodableAudio):
        transcriber.transcribe_bytes(b"")
    with pytest.raises(UndecodableAudio):
        transcriber.transcribe_bytes(b"OggS" + bytes(range(256)) * 8)
    with pytest.raises(AudioTooLong):
        Transcriber(JuneSettings(max_audio_seconds=1.0)).transcribe_bytes(silence(2.0))
    with pytest.raises(ValueError, match="16000"):
        transcriber.transcribe(Pcm(np.zeros(100, np.float32), 8000))


def test_the_embedded_files_are_pinned(tmp_path: Path) -> None:
    files = resolve_moonshine("tiny-en")
    assert files.encoder.parent.parts[-3:] == ("moonshine_voice", "assets", "tiny-en")
    tokenizer = next(pinned for pinned in TINY_EN if pinned.name == "tokenizer.bin")
    shutil.copy(files.tokenizer, tmp_path / "tokenizer.bin")
    check_pinned(tmp_path, (tokenizer,))
    data = bytearray((tmp_path / "tokenizer.bin").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "tokenizer.bin").write_bytes(bytes(data))
    with pytest.raises(ModelCorrupt, match="sha256"):
        check_pinned(tmp_path, (tokenizer,))
    (tmp_path / "tokenizer.bin").write_bytes(bytes(data[:-1]))
    with pytest.raises(ModelCorrupt, match="bytes"):
        check_pinned(tmp_path, (tokenizer,))
    with pytest.raises(ModelNotFound, match="missing"):
        check_pinned(tmp_path, TINY_EN)
    with pytest.raises(ModelNotFound, match="not a folder"):
        resolve_moonshine("base-en")


def test_a_moonshine_folder_the_user_names_is_loaded(tmp_path: Path) -> None:
    for path in vars(resolve_moonshine("tiny-en")).values():
        (tmp_path / path.name).symlink_to(path)
    transcriber = Transcriber(JuneSettings(stt_engine="moonshine", stt_moonshine_model=str(tmp_path)))
    assert "weather" in words(transcriber.transcribe_bytes(say("What's the weather like tomorrow?")).text)
    (tmp_path / "tokenizer.bin").unlink()
    with pytest.raises(ModelNotFound, match="tokenizer.bin"):
        resolve_moonshine(str(tmp_path))
