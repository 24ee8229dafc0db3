"""Whisper through faster-whisper (CTranslate2): PCM or any uploaded file in, a `Transcript` out."""

from __future__ import annotations

import logging

from common.settings import JuneSettings
from common.types import Segment, Transcript
from models.devices import resolve_device
from models.embedded import resolve_whisper
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, decode

log = logging.getLogger(__name__)


class Transcriber:
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

    def transcribe_bytes(self, data: bytes) -> Transcript:
        """Decode an uploaded file (any format PyAV reads) and transcribe it."""
        return self.transcribe(decode(data, max_seconds=self.settings.max_audio_seconds))

    def transcribe(self, pcm: Pcm) -> Transcript:
        if pcm.sample_rate != WHISPER_SAMPLE_RATE:
            raise ValueError(f"Whisper needs {WHISPER_SAMPLE_RATE} Hz audio, got {pcm.sample_rate}")
        segments, info = self.model.transcribe(
            pcm.samples,
            beam_size=self.settings.stt_beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        kept = [Segment(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]
        text = " ".join(s.text for s in kept)
        return Transcript(text=text, language=info.language, duration_s=pcm.duration_s, segments=kept)
