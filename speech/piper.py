"""Piper (ONNX) voices: the embedded voice or any voice's .onnx file."""

from __future__ import annotations

import logging

import numpy as np

from models.embedded import resolve_piper_voice

log = logging.getLogger(__name__)


class PiperBackend:
    def __init__(self, voice: str, device: str = "cpu"):
        from piper import PiperVoice

        model_path = resolve_piper_voice(voice)
        self.voice = PiperVoice.load(model_path, use_cuda=device == "cuda")
        self.sample_rate = self.voice.config.sample_rate
        log.info("piper voice %s loaded (%d Hz)", model_path.name, self.sample_rate)

    def synthesize_sentence(self, sentence: str) -> np.ndarray:
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(sentence)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
