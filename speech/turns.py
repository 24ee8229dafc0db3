"""Where a spoken turn starts and ends in a live microphone stream: Silero VAD, frame by frame.

The model is the one faster-whisper ships (its `vad_filter`), run here with its state carried from one
chunk of the stream to the next, so that a 32 ms frame is scored once, as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import numpy as np

from speech.audio import WHISPER_SAMPLE_RATE

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, the frame Silero scores
CONTEXT_SAMPLES = 64
FRAME_MS = FRAME_SAMPLES * 1000 / WHISPER_SAMPLE_RATE


@lru_cache(maxsize=1)
def _silero_session():
    """faster-whisper's Silero model file, found without importing faster-whisper (and CTranslate2)."""
    import onnxruntime

    spec = find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise RuntimeError("the voice activity model comes with faster-whisper, which is not installed")
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1
    options.log_severity_level = 4
    path = Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=options)


class SpeechProbability:
    """The probability of speech in each 32 ms frame of one continuous stream."""

    def __init__(self):
        self._session = _silero_session()  # one for the process: ONNX Runtime's run is thread-safe
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """`frames`: a whole number of frames of 16 kHz float samples; one probability per frame."""
        chunk = frames.reshape(-1, FRAME_SAMPLES)
        if not len(chunk):
            return np.zeros(0, np.float32)
        contexts = np.concatenate([self._context[None, :], chunk[:-1, -CONTEXT_SAMPLES:]])
        probabilities, self._h, self._c = self._session.run(
            None, {"input": np.concatenate([contexts, chunk], axis=1), "h": self._h, "c": self._c})
        self._context = chunk[-1, -CONTEXT_SAMPLES:].copy()
        return probabilities.ravel()


@dataclass(frozen=True)
class TurnEvent:
    """"speech_started"; "paused" (silence of `pause_ms` after speech, the turn so far in `audio`) and "resumed" (speech
    again before the turn ended: what was said at the pause is not the whole turn); "turn_ended" (the whole turn)."""

    kind: Literal["speech_started", "paused", "resumed", "turn_ended"]
    audio: np.ndarray | None = None  # the turn with a little lead-in, on "paused" and "turn_ended"

    @property
    def duration_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / WHISPER_SAMPLE_RATE


@dataclass(frozen=True)
class TurnRules:
    start_threshold: float = 0.5
    stop_threshold: float = 0.35
    min_speech_ms: int = 200  # speech this long starts a turn (and interrupts June)
    end_silence_ms: int = 700  # silence this long after speech ends the turn
    pause_ms: int = 0  # silence this long after speech is a pause (a turn may end there); 0: pauses are not reported
    lead_in_ms: int = 300  # kept from before the speech started, so the first syllable is not cut
    max_turn_s: float = 30.0


class TurnDetector:
    """Feed it the microphone's samples as they come; it says when a turn starts and hands over each ended one."""

    def __init__(self, rules: TurnRules = TurnRules(), speech: SpeechProbability | None = None):
        self.rules = rules
        self._speech = speech or SpeechProbability()
        self._pending = np.zeros(0, np.float32)
        self._lead_in: list[np.ndarray] = []
        self._turn: list[np.ndarray] = []
        self._voiced_run = 0
        self._silent_run = 0
        self._paused = False
        self.speaking = False

    def feed(self, samples: np.ndarray) -> list[TurnEvent]:
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(self._pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        events: list[TurnEvent] = []
        for frame, probability in zip(frames.reshape(-1, FRAME_SAMPLES), self._speech(frames)):
            if event := self._step(frame, float(probability)):
                events.append(event)
        return events

    def _step(self, frame: np.ndarray, probability: float) -> TurnEvent | None:
        rules = self.rules
        if not self.speaking:
            self._lead_in.append(frame)
            self._voiced_run = self._voiced_run + 1 if probability >= rules.start_threshold else 0
            keep = int((rules.lead_in_ms + rules.min_speech_ms) / FRAME_MS) + 1
            del self._lead_in[:-keep]
            if self._voiced_run * FRAME_MS >= rules.min_speech_ms:
                self.speaking, self._turn, self._lead_in, self._silent_run = True, self._lead_in, [], 0
                return TurnEvent("speech_started")
            return None
        self._turn.append(frame)
        self._silent_run = self._silent_run + 1 if probability < rules.stop_threshold else 0
        silence_ms = self._silent_run * FRAME_MS
        too_long = len(self._turn) * FRAME_MS >= rules.max_turn_s * 1000
        if silence_ms >= rules.end_silence_ms or too_long:
            audio = np.concatenate(self._turn)
            self.speaking, self._turn, self._voiced_run, self._paused = False, [], 0, False
            return TurnEvent("turn_ended", audio)
        if self._paused and not self._silent_run:
            self._paused = False
            return TurnEvent("resumed")
        if 0 < rules.pause_ms <= silence_ms and not self._paused:
            self._paused = True
            return TurnEvent("paused", np.concatenate(self._turn))
        return None
