"""Compare the embedded Whisper models on Piper-spoken sentences: accuracy, load time, speed.

    python -m benchmarks.stt_models [--output DIR]

Writes `stt_models.json` and `stt_models.png` to DIR (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.speech_samples import QUESTIONS, SpeechSample, speak_samples
from common.settings import JuneSettings
from speech.transcriber import Transcriber

MODELS = ("tiny.en", "base")
# Piper's speech varies from one synthesis to the next: several renditions steady the error rate.
RENDITIONS = 3
SENTENCES = (
    "Hello there.",
    "Turn off the lights.",
    "What's the weather like tomorrow?",
    "Remind me to call my sister this evening.",
    "Schedule a meeting with the design team next Wednesday afternoon.",
    "Please add milk, eggs and bread to my shopping list.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Could you explain how a rainbow forms after a summer storm?",
    "I would like to book a table for a few people at an Italian restaurant on Friday night.",
    "Photosynthesis is the process by which green plants turn sunlight, water and carbon dioxide "
    "into sugar and oxygen.",
    "When you travel abroad, remember to carry your passport, check the local customs, and keep a "
    "copy of your travel insurance somewhere safe.",
    "My grandmother grew tomatoes, beans and sunflowers in a small garden behind her house, and every "
    "summer the whole family helped her with the harvest.",
    *QUESTIONS,
)


@dataclass(frozen=True)
class SampleResult:
    text: str
    transcript: str
    duration_s: float
    latency_ms: float
    word_errors: int
    words: int


@dataclass(frozen=True)
class ModelResult:
    model: str
    load_s: float
    wer: float
    median_latency_ms: float
    real_time_factor: float
    samples: list[SampleResult]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("What's up?" -> ["whats", "up"])."""
    return re.sub(r"[^\w\s]", "", text.lower().replace("-", " ")).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def measure_model(model: str, samples: list[SpeechSample]) -> ModelResult:
    """Load one Whisper model, warm it up, and transcribe every sample."""
    started = time.perf_counter()
    transcriber = Transcriber(JuneSettings(stt_model=model))
    load_s = time.perf_counter() - started
    transcriber.transcribe_bytes(samples[0].ogg)
    results = []
    for sample in samples:
        started = time.perf_counter()
        transcript = transcriber.transcribe_bytes(sample.ogg).text
        latency_ms = (time.perf_counter() - started) * 1000
        reference = words(sample.text)
        results.append(SampleResult(sample.text, transcript, sample.duration_s, latency_ms,
                                    edit_distance(reference, words(transcript)), len(reference)))
    return ModelResult(
        model=model,
        load_s=load_s,
        wer=sum(r.word_errors for r in results) / sum(r.words for r in results),
        median_latency_ms=statistics.median(r.latency_ms for r in results),
        real_time_factor=sum(r.latency_ms for r in results) / 1000 / sum(r.duration_s for r in results),
        samples=results,
    )


def plot(results: list[ModelResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("word error rate (%)", [r.wer * 100 for r in results]),
        ("median latency (ms)", [r.median_latency_ms for r in results]),
        ("real-time factor", [r.real_time_factor for r in results]),
        ("load time (s)", [r.load_s for r in results]),
    ]
    names = [r.model for r in results]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for axis, (title, values) in zip(axes, panels):
        bars = axis.bar(names, values, color=["tab:blue", "tab:orange"])
        axis.bar_label(bars, fmt="%.4g")
        axis.set_title(title)
    figure.suptitle(f"Whisper models on {len(SENTENCES)} Piper-spoken sentences x {RENDITIONS} renditions "
                    f"({os.cpu_count()} CPUs)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    settings = JuneSettings()
    print(f"speaking {len(SENTENCES)} sentences {RENDITIONS} times each with Piper ...", flush=True)
    samples = speak_samples([text for text in SENTENCES for _ in range(RENDITIONS)], settings)
    results = []
    for model in MODELS:
        print(f"measuring whisper {model} ...", flush=True)
        result = measure_model(model, samples)
        print(f"  WER {result.wer:.1%}  load {result.load_s:.2f} s  median {result.median_latency_ms:.0f} ms  "
              f"RTF {result.real_time_factor:.2f}", flush=True)
        results.append(result)

    most_accurate = min(results, key=lambda r: r.wer).model
    fastest = min(results, key=lambda r: r.median_latency_ms).model
    report = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"stt_cpu_threads": settings.stt_cpu_threads, "stt_beam_size": settings.stt_beam_size,
                     "stt_compute_type": settings.stt_compute_type},
        "sentences": len(SENTENCES),
        "renditions": RENDITIONS,
        "audio_s": round(sum(s.duration_s for s in samples), 1),
        "most_accurate": most_accurate,
        "fastest": fastest,
        "models": [asdict(r) for r in results],
    }
    (args.output / "stt_models.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.output / "stt_models.png")
    print(f"most accurate: {most_accurate}; fastest: {fastest}")
    print(f"wrote {args.output / 'stt_models.json'} and {args.output / 'stt_models.png'}")


if __name__ == "__main__":
    main()
