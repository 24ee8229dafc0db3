"""Moonshine (moonshine-ai, MIT) on ONNX Runtime: the encoder, then greedy decoding with the merged decoder's
key/value cache. Speech is found with Silero VAD first, as Whisper's `vad_filter` finds it, and speech longer than
Moonshine's clips is split at its pauses."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from common.types import Segment, Transcript
from models.moonshine import MoonshineFiles
from speech.audio import WHISPER_SAMPLE_RATE, Pcm

log = logging.getLogger(__name__)

START_TOKEN, END_TOKEN = 1, 2  # <s>, </s>; ids 0-2 are the special tokens
TOKENS_PER_SECOND = 6.5  # upstream's bound on what a second of speech holds: it stops a looping decoder
EXTRA_TOKENS = 10  # so a short command is never cut
MAX_CHUNK_S = 15.0  # Moonshine was trained on short clips: longer speech is split at the last pause before this
MIN_CHUNK_SAMPLES = WHISPER_SAMPLE_RATE // 2  # the encoder's convolutions need some audio: shorter is padded


class MoonshineTokenizer:
    """`tokenizer.bin`: for each token id in turn, one length byte and that many bytes of UTF-8 ("▁" is a space;
    ids 3-258 are single raw bytes, for text outside the vocabulary)."""

    def __init__(self, path: Path):
        data = path.read_bytes()
        self.pieces: list[bytes] = []
        at = 0
        while at < len(data):
            self.pieces.append(data[at + 1:at + 1 + data[at]])
            at += 1 + data[at]

    def decode(self, ids: list[int]) -> str:
        text = b"".join(self.pieces[i] for i in ids if i > END_TOKEN).decode("utf-8", errors="replace")
        return text.replace("\u2581", " ").strip()


class MoonshineModel:
    """One clip of speech (up to MAX_CHUNK_S) in, its text out."""

    def __init__(self, files: MoonshineFiles, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        cpu = ["CPUExecutionProvider"]
        self.encoder = onnxruntime.InferenceSession(str(files.encoder), sess_options=options, providers=cpu)
        self.decoder = onnxruntime.InferenceSession(str(files.decoder), sess_options=options, providers=cpu)
        self.tokenizer = MoonshineTokenizer(files.tokenizer)
        cache = [put for put in self.decoder.get_inputs() if put.name.startswith("past_key_values.")]
        self._cache_names = [put.name for put in cache]
        heads, head_size = cache[0].shape[1], cache[0].shape[3]
        self._empty_cache = {name: np.zeros((1, heads, 0, head_size), np.float32) for name in self._cache_names}

    def transcribe(self, samples: np.ndarray) -> str:
        audio = np.pad(samples.astype(np.float32), (0, max(0, MIN_CHUNK_SAMPLES - len(samples))))[None, :]
        (hidden,) = self.encoder.run(None, {"input_values": audio, "attention_mask": np.ones(audio.shape, np.int64)})
        # One column, broadcast over every frame: one clip has no padding to mask, and the export's full-width mask
        # fails beyond ~9 s of audio (an ONNX Runtime broadcast error).
        every_frame = np.ones((1, 1), np.int64)
        cache = self._empty_cache
        tokens = [START_TOKEN]
        for step in range(int(len(samples) / WHISPER_SAMPLE_RATE * TOKENS_PER_SECOND) + EXTRA_TOKENS):
            logits, *present = self.decoder.run(None, {
                "input_ids": np.array([[tokens[-1]]], np.int64), "encoder_hidden_states": hidden,
                "encoder_attention_mask": every_frame, "use_cache_branch": np.array([step > 0]), **cache})
            token = int(logits[0, -1].argmax())
            if token == END_TOKEN:
                break
            tokens.append(token)
            # The cross-attention keys and values are made once, on the first step; later steps extend the rest.
            cache = cache | {name: value for name, value in zip(self._cache_names, present)
                             if step == 0 or ".decoder." in name}
        return self.tokenizer.decode(tokens)


class MoonshineEngine:
    """A whole upload: the speech Silero VAD finds, in chunks of at most MAX_CHUNK_S, one Segment per chunk."""

    language = "en"  # the tiny-en model knows English only

    def __init__(self, files: MoonshineFiles, threads: int):
        from faster_whisper.vad import VadOptions, get_speech_timestamps  # what Whisper's vad_filter runs

        self.model = MoonshineModel(files, threads)
        self._speech = partial(get_speech_timestamps, vad_options=VadOptions(max_speech_duration_s=MAX_CHUNK_S))
        log.info("moonshine %s loaded on cpu (onnxruntime, %s threads)", files.encoder.parent.name, threads or "all")

    def transcribe(self, pcm: Pcm) -> Transcript:
        segments = []
        for span in self._speech(pcm.samples):
            if text := self.model.transcribe(pcm.samples[span["start"]:span["end"]]):
                segments.append(Segment(span["start"] / pcm.sample_rate, span["end"] / pcm.sample_rate, text))
        return Transcript(" ".join(s.text for s in segments), self.language, pcm.duration_s, segments)
