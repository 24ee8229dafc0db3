"""Speech to text: PCM or any uploaded file in, a `Transcript` out, from Moonshine (`speech.moonshine`) or Whisper
through faster-whisper (CTranslate2), as `JUNE_STT_ENGINE` chooses. The transcriber times the engine's work."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Literal, Protocol

from common.settings import JuneSettings
from common.types import Segment, Transcript
from models.devices import resolve_device
from models.embedded import resolve_whisper
from models.moonshine import resolve_moonshine
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, decode
from speech.moonshine import MoonshineEngine

log = logging.getLogger(__name__)

# The English Whisper that `auto` replaces with Moonshine tiny-en, as accurate on English and 7x faster in
# benchmarks/stt_models.py (WER 20.7 vs 20.6 %, median 95 vs 663 ms a clip; see docs/models.md). Other languages
# (`base`) and models the user names stay on Whisper.
ENGLISH_WHISPER = "tiny.en"


class SpeechEngine(Protocol):
    def transcribe(self, pcm: Pcm) -> Transcript: ...


def choose_engine(settings: JuneSettings) -> Literal["moonshine", "whisper"]:
    """`auto`: Moonshine in place of the embedded English Whisper, Whisper for any other model."""
    if settings.stt_engine != "auto":
        return settings.stt_engine
    return "moonshine" if settings.stt_model == ENGLISH_WHISPER else "whisper"


def engine_label(settings: JuneSettings) -> str:
    """What answers speech, for people: "Moonshine tiny-en", "Whisper base"."""
    if choose_engine(settings) == "moonshine":
        return f"Moonshine {Path(settings.stt_moonshine_model).name}"
    return f"Whisper {Path(settings.stt_model).name}"


class WhisperEngine:
    """Whisper on CUDA (float16) when there is a GPU, int8 on CPU, unless settings say otherwise."""

    def __init__(self, settings: JuneSettings):
        from faster_whisper import WhisperModel

        self.settings = settings
        device = resolve_device(settings.stt_device)
        compute_type = settings.stt_compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        self.device, self.compute_type = device, compute_type
        model_dir = resolve_whisper(settings.stt_model, settings.models_dir)
        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type, cpu_threads=settings.stt_cpu_threads
        )
        log.info("whisper %s loaded on %s (%s)", settings.stt_model, device, compute_type)

    def transcribe(self, pcm: Pcm) -> Transcript:
        segments, info = self.model.transcribe(
            pcm.samples,
            beam_size=self.settings.stt_beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        kept = [Segment(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]
        text = " ".join(s.text for s in kept)
        return Transcript(text=text, language=info.language, duration_s=pcm.duration_s, segments=kept)


class Transcriber:
    """The engine `choose_engine` picks; each transcript carries the engine's own time (`engine_ms`)."""

    def __init__(self, settings: JuneSettings):
        self.settings = settings
        self.engine_name = choose_engine(settings)
        self.engine: SpeechEngine = (
            MoonshineEngine(resolve_moonshine(settings.stt_moonshine_model), settings.stt_cpu_threads)
            if self.engine_name == "moonshine" else WhisperEngine(settings)
        )

    def transcribe_bytes(self, data: bytes) -> Transcript:
        """Decode an uploaded file (any format PyAV reads) and transcribe it."""
        return self.transcribe(decode(data, max_seconds=self.settings.max_audio_seconds))

    def transcribe(self, pcm: Pcm) -> Transcript:
        if pcm.sample_rate != WHISPER_SAMPLE_RATE:
            raise ValueError(f"speech to text needs {WHISPER_SAMPLE_RATE} Hz audio, got {pcm.sample_rate}")
        started = time.perf_counter()
        transcript = self.engine.transcribe(pcm)
        return dataclasses.replace(transcript, engine_ms=round((time.perf_counter() - started) * 1000, 1))
