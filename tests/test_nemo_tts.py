"""The NeMo TTS backend, without Ray: tiny random FastPitch + HiFi-GAN checkpoints through the real loading path."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.nemo_checkpoints import SAMPLE_RATE, NemoCheckpoints, build_checkpoints
from common.settings import JuneSettings
from models.devices import resolve_device
from speech.audio import Pcm, decode, encode
from speech.nemo import NemoBackend
from speech.synthesizer import Synthesizer, load_backend


def nemo_settings(spectrogram: Path | None, vocoder: Path | None) -> JuneSettings:
    return JuneSettings(tts_backend="nemo", tts_device="auto", tts_nemo_spectrogram=spectrogram,
                        tts_nemo_vocoder=vocoder)


@pytest.fixture(scope="module")
def backend(nemo_checkpoints: NemoCheckpoints) -> NemoBackend:
    return load_backend(nemo_settings(*nemo_checkpoints))


@pytest.fixture(scope="module")
def synthesizer(backend: NemoBackend) -> Synthesizer:
    return Synthesizer(backend)


def test_loads_fastpitch_and_hifigan_for_inference(backend: NemoBackend) -> None:
    assert backend.sample_rate == SAMPLE_RATE and backend.device == resolve_device("auto")
    assert next(backend.vocoder.parameters()).device.type == backend.device
    assert type(backend.spectrogram).__name__ == "FastPitchModel" and not backend.spectrogram.training
    assert type(backend.vocoder).__name__ == "HifiGanModel" and not backend.vocoder.training


def test_a_sentence_is_mono_float32_audio(backend: NemoBackend) -> None:
    audio = backend.synthesize_sentence("Hello there, how are you today?")
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert np.isfinite(audio).all()


def test_longer_text_lasts_longer(backend: NemoBackend) -> None:
    short = backend.synthesize_sentence("Hi.")
    long = backend.synthesize_sentence("The quick brown fox jumps over the lazy dog near the river bank.")
    assert long.size > 2 * short.size


def test_sentences_are_spoken_one_by_one_with_a_pause(synthesizer: Synthesizer) -> None:
    one = synthesizer.synthesize("Hello there.")
    two = synthesizer.synthesize("Hello there. Hello there.")
    # Inference is deterministic: the same sentence gives the same samples.
    assert len(two.samples) == 2 * len(one.samples) + len(synthesizer.pause)
    np.testing.assert_array_equal(two.samples[: len(one.samples)], one.samples)


def test_ogg_opus_and_wav_decode_back_at_the_same_length(synthesizer: Synthesizer) -> None:
    pcm = synthesizer.synthesize("June speaks with NeMo now. Does it work?")
    ogg = decode(synthesizer.speak("June speaks with NeMo now. Does it work?", "ogg"), sample_rate=SAMPLE_RATE)
    assert ogg.duration_s == pytest.approx(pcm.duration_s, abs=0.05)
    with wave.open(io.BytesIO(synthesizer.speak("June speaks with NeMo now. Does it work?", "wav"))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (SAMPLE_RATE, 1, len(pcm.samples))


@pytest.mark.parametrize("text", ["", "  \n\t ", "**`  `**"])
def test_nothing_to_say_is_no_audio(synthesizer: Synthesizer, text: str) -> None:
    assert synthesizer.synthesize(text).samples.size == 0


@pytest.mark.parametrize("text", [
    "😀🎉🚀",
    "<script>alert('x')</script><b>bold</b> &amp; &#x41;",
    "bell\x07 null\x00 escape\x1b[31m red\x1b[0m del\x7f nbsp\u00a0 rtl\u202e",
    "Ünïcödé, 中文, العربية, ẞ, ﬁ ligature.",
    "word " * 2000,  # 10k characters: the synthesizer cuts it into chunks
])
def test_hostile_text_gives_finite_audio(synthesizer: Synthesizer, text: str) -> None:
    pcm = synthesizer.synthesize(text)
    assert isinstance(pcm, Pcm) and pcm.samples.dtype == np.float32 and np.isfinite(pcm.samples).all()
    if pcm.samples.size:
        assert decode(encode(pcm, "ogg")).duration_s > 0


def test_text_the_tokenizer_drops_entirely_is_no_audio(backend: NemoBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without space padding, emoji-only text leaves no tokens, which FastPitch itself cannot take.
    monkeypatch.setattr(backend.spectrogram.vocab, "pad_with_space", False)
    assert backend.synthesize_sentence("😀🎉").size == 0
    assert Synthesizer(backend).synthesize("😀🎉. Hi.").samples.size > 0


def test_nemo_is_not_imported_for_piper() -> None:
    code = "import sys, deployments.tts; assert not any(m.split('.')[0] == 'nemo' for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def bad_paths(nemo_checkpoints: NemoCheckpoints, tmp_path: Path) -> dict[str, tuple[Path | None, Path | None]]:
    not_nemo = tmp_path / "voice.nemo"
    not_nemo.write_text("not a tar archive")
    return {
        "unset spectrogram": (None, nemo_checkpoints.vocoder),
        "unset vocoder": (nemo_checkpoints.spectrogram, None),
        "missing": (tmp_path / "absent.nemo", nemo_checkpoints.vocoder),
        "directory": (nemo_checkpoints.spectrogram, tmp_path),
        "not an archive": (not_nemo, nemo_checkpoints.vocoder),
        "vocoder as spectrogram": (nemo_checkpoints.vocoder, nemo_checkpoints.vocoder),
        "spectrogram as vocoder": (nemo_checkpoints.spectrogram, nemo_checkpoints.spectrogram),
    }


@pytest.mark.parametrize(("case", "error", "message"), [
    ("unset spectrogram", ValueError, "JUNE_TTS_NEMO_SPECTROGRAM is not set"),
    ("unset vocoder", ValueError, "JUNE_TTS_NEMO_VOCODER is not set"),
    ("missing", FileNotFoundError, "JUNE_TTS_NEMO_SPECTROGRAM=.*absent.nemo does not exist"),
    ("directory", ValueError, "JUNE_TTS_NEMO_VOCODER=.* is not a file"),
    ("not an archive", ValueError, "JUNE_TTS_NEMO_SPECTROGRAM=.*voice.nemo is not a .nemo archive"),
    ("vocoder as spectrogram", ValueError, "JUNE_TTS_NEMO_SPECTROGRAM=.* holds a HifiGanModel.* swapped"),
    ("spectrogram as vocoder", ValueError, "JUNE_TTS_NEMO_VOCODER=.* holds a FastPitchModel.* swapped"),
])
def test_bad_checkpoint_settings_say_which_setting(
    nemo_checkpoints: NemoCheckpoints, tmp_path: Path, case: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        load_backend(nemo_settings(*bad_paths(nemo_checkpoints, tmp_path)[case]))


def test_a_vocoder_at_another_sample_rate_is_refused(nemo_checkpoints: NemoCheckpoints, tmp_path: Path) -> None:
    other = build_checkpoints(tmp_path, sample_rate=16_000)
    with pytest.raises(ValueError, match="22050 Hz .* 16000 Hz: use a matching pair"):
        load_backend(nemo_settings(nemo_checkpoints.spectrogram, other.vocoder))


def test_only_training_weights_may_be_missing(nemo_checkpoints: NemoCheckpoints, tmp_path: Path) -> None:
    """The test vocoder leaves out its discriminators; any other missing weight is still an error."""
    with tarfile.open(nemo_checkpoints.vocoder) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    weights = tmp_path / "unpacked" / "model_weights.ckpt"
    state = torch.load(weights, map_location="cpu")
    del state["generator.conv_pre.bias"]
    torch.save(state, weights)
    broken = tmp_path / "broken.nemo"
    with tarfile.open(broken, "w") as archive:
        archive.add(tmp_path / "unpacked", arcname=".")
    with pytest.raises(RuntimeError, match="generator.conv_pre.bias"):
        load_backend(nemo_settings(nemo_checkpoints.spectrogram, broken))


def test_missing_nemo_says_how_to_install_it(nemo_checkpoints: NemoCheckpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nemo.collections.tts.models.base", None)
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[nemo\]"'):
        load_backend(nemo_settings(*nemo_checkpoints))
