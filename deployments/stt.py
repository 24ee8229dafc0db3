"""SpeechToText: Moonshine or Whisper (`speech.transcriber`) behind a Ray Serve deployment."""

from __future__ import annotations

from ray import serve

from common.settings import JuneSettings
from common.types import Transcript
from speech.transcriber import Transcriber


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
class SpeechToText:
    def __init__(self, settings: JuneSettings):
        self.transcriber = Transcriber(settings)

    def transcribe(self, data: bytes) -> Transcript:
        """The transcript carries the engine's own time (`engine_ms`): the Ingress reports it as `stt_engine`."""
        return self.transcriber.transcribe_bytes(data)

    def check_health(self) -> None:
        """Answering at all is the check: the model loaded in __init__ or the replica never started."""
