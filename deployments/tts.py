"""TextToSpeech: the `speech.synthesizer` (Piper on CPU; NeMo plugs in beside it) behind a deployment."""

from __future__ import annotations

from collections.abc import Iterator

from ray import serve

from common.settings import JuneSettings
from speech.synthesizer import Synthesizer, load_backend


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
class TextToSpeech:
    def __init__(self, settings: JuneSettings):
        self.synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)

    def speak(self, text: str, audio_format: str = "ogg") -> bytes:
        return self.synthesizer.speak(text, audio_format)

    def speak_stream(self, text: str, audio_format: str = "ogg") -> Iterator[bytes]:
        yield from self.synthesizer.stream(text, audio_format)

    def check_health(self) -> None:
        """Answering at all is the check: the voice loaded in __init__ or the replica never started."""
