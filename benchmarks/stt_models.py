"""Which engine hears English best here: Moonshine tiny-en, Whisper tiny.en and Whisper base, on utterances spoken
by several voices, clean and with noise, plus the peer benchmark's questions.

    python -m benchmarks.stt_models [--output DIR]

Voices: the embedded Piper voice at three speeds and variations, and five espeak-ng voices (apt-get install espeak-ng
sox). Half the utterances are heard a second time with pink or brown noise from sox at 10 dB SNR. Each engine runs in
a process of its own (so its memory is its own) and the engines take turns on each clip (so a busy machine slows
them alike). The engine's time is timed (OGG/Opus decoding included, as a voice note is heard), after a warm-up.
Word error rate with jiwer over both sides normalised as OpenAI's Whisper evaluation normalises English
(whisper-normalizer: numbers as digits, American spelling, no punctuation or fillers).
Writes `stt_models.json` and `stt_models.png` to DIR (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import jiwer
import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer

from benchmarks.speech_samples import QUESTIONS
from common.settings import JuneSettings
from models.embedded import resolve_piper_voice
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, decode, encode

UTTERANCES: dict[str, tuple[str, ...]] = {
    "command": (
        "Turn off the lights.",
        "Stop the music.",
        "Set a timer for ten minutes.",
        "Open the garage door.",
        "Skip this song.",
        "Call mom.",
        "Read my new messages.",
        "Turn the volume down a little.",
        "Remind me to water the plants tomorrow morning.",
        "Add coffee filters to the shopping list.",
        "Lock the front door.",
        "Cancel my alarm.",
        "Play some jazz in the kitchen.",
        "Pause.",
    ),
    "question": (
        "What time is it in Tokyo right now?",
        "Will it rain this afternoon?",
        "How far is the moon from the earth?",
        "What should I wear to a job interview?",
        "Why do cats purr?",
        "Is the pharmacy on the corner open on Sundays?",
        "What's a good recipe for banana bread?",
        "How do I reset my router?",
        "Can dogs eat grapes?",
        "Who won the football match last night?",
        "What does the word serendipity mean?",
        "Where did I park the car?",
        "How long should I boil an egg?",
        "What is the difference between a virus and a bacterium?",
    ),
    "long": (
        "I need to leave the house by half past seven tomorrow, so please wake me up early and tell me if the "
        "trains are running late.",
        "Could you write a short note to my neighbour saying thank you for looking after the cat while we were "
        "away on holiday?",
        "The library closes early on Fridays, so if you want to return those books before the weekend you should "
        "go straight after lunch.",
        "Yesterday the weather was so warm that we had dinner in the garden and stayed outside talking until it "
        "got completely dark.",
        "Before you start painting the bedroom, move the furniture into the middle and cover everything with old "
        "sheets.",
        "My brother is flying in from Chicago on Thursday evening, and I promised I would pick him up at the "
        "airport.",
        "When the bread has risen to twice its size, knock it back, shape it into a loaf and bake it in a hot oven.",
        "Please summarise the main points of the meeting and send them to everyone who could not attend.",
        "The new bicycle lane along the river makes it much safer to cycle to work, even in heavy traffic.",
        "If the heating makes that rattling noise again tonight, I think we should finally call a plumber.",
        "She opened the old wooden box and found a bundle of letters tied together with a faded blue ribbon.",
        "Explain to me, in simple words, how a vaccine teaches the immune system to recognise a disease.",
    ),
    "number": (
        "Set an alarm for six forty five.",
        "What is seventeen times three?",
        "My flight number is four hundred and twelve.",
        "Add two kilograms of flour and three hundred grams of sugar.",
        "The meeting is on the twenty third of March.",
        "Transfer fifty dollars to my savings account.",
        "It was ninety eight degrees outside today.",
        "What is the square root of one hundred and forty four?",
        "Our house is number fifteen on Station Road.",
        "Set the thermostat to twenty one degrees.",
        "The battery is at eight percent.",
        "Divide nine hundred by twelve.",
    ),
    "name": (
        "Send a message to Priya saying I'm running late.",
        "Call Dr. Okafor's office.",
        "Who painted the Mona Lisa?",
        "Play the latest album by Taylor Swift.",
        "Tell Jean-Luc the package arrived.",
        "When did Neil Armstrong walk on the moon?",
        "Navigate to Heathrow Airport, terminal five.",
        "Is Wojciech coming to the party on Saturday?",
        "What is the population of Buenos Aires?",
        "Email Siobhan the photos from Edinburgh.",
        "Who wrote Pride and Prejudice?",
        "Book a table at Luigi's for Sophie and me.",
    ),
}

# Piper's embedded joe voice as it ships, faster and flatter, slower and livelier.
PIPER_STYLES = {"piper joe": (1.0, 0.667, 0.8), "piper joe fast": (0.8, 0.5, 0.6), "piper joe slow": (1.25, 0.9, 1.0)}
# espeak-ng voice (with a variant) and words per minute.
ESPEAK_VOICES = {"espeak en-us": ("en-us", 165), "espeak en-gb f3": ("en-gb+f3", 175),
                 "espeak scotland": ("en-gb-scotland", 150), "espeak caribbean m3": ("en-029+m3", 160),
                 "espeak en-us f2 fast": ("en-us+f2", 200)}
VOICES = (*PIPER_STYLES, *ESPEAK_VOICES)
NOISES = ("pinknoise", "brownnoise")
SNR_DB = 10.0


@dataclass(frozen=True)
class Engine:
    label: str
    engine: str  # JUNE_STT_ENGINE
    model: str  # JUNE_STT_MODEL


ENGINES = (Engine("Moonshine tiny-en", "moonshine", "tiny.en"), Engine("Whisper tiny.en", "whisper", "tiny.en"),
           Engine("Whisper base", "whisper", "base"))


@dataclass(frozen=True)
class Clip:
    text: str
    category: str
    voice: str
    noise: str  # "" when clean
    duration_s: float
    ogg: bytes


@dataclass(frozen=True)
class Heard:
    text: str
    category: str
    voice: str
    noise: str
    duration_s: float
    transcript: str
    latency_ms: float
    word_errors: int  # substitutions, deletions and insertions after normalising
    words: int  # in the normalised reference


@dataclass(frozen=True)
class EngineResult:
    engine: str
    load_s: float
    wer: float
    wer_clean: float
    wer_noisy: float
    wer_by_category: dict[str, float]
    median_latency_ms: float
    p95_latency_ms: float
    real_time_factor: float
    process_rss_mib: float  # before the engine was loaded
    peak_rss_mib: float  # the process's high-water mark at the end
    heard: list[Heard]

    @property
    def model_mib(self) -> float:
        return self.peak_rss_mib - self.process_rss_mib


normalise = EnglishTextNormalizer()


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: all the word errors over all the reference words."""
    return jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses])


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """The word errors in `hypothesis`, and the words in `reference`."""
    counts = jiwer.process_words(normalise(reference), normalise(hypothesis))
    return counts.substitutions + counts.deletions + counts.insertions, counts.hits + counts.substitutions + \
        counts.deletions


def speak_clips() -> list[Clip]:
    """Every utterance once, voices in turn; every other one again with noise; then the peer benchmark's questions."""
    from piper import PiperVoice, SynthesisConfig

    piper = PiperVoice.load(resolve_piper_voice("embedded"))

    def speak(text: str, voice: str) -> Pcm:
        if voice in PIPER_STYLES:
            length, noise, noise_w = PIPER_STYLES[voice]
            config = SynthesisConfig(length_scale=length, noise_scale=noise, noise_w_scale=noise_w)
            audio = np.concatenate([c.audio_float_array for c in piper.synthesize(text, syn_config=config)])
            return decode(encode(Pcm(audio.astype(np.float32), piper.config.sample_rate), "wav"))
        name, speed = ESPEAK_VOICES[voice]
        return decode(subprocess.run(["espeak-ng", "-v", name, "-s", str(speed), "--stdout", text],
                                     check=True, capture_output=True).stdout)

    spoken = [(text, category) for category, texts in UTTERANCES.items() for text in texts]
    clips = []
    for index, (text, category) in enumerate(spoken):
        voice = VOICES[index % len(VOICES)]
        pcm = speak(text, voice)
        clips.append(Clip(text, category, voice, "", pcm.duration_s, encode(pcm, "ogg")))
        if index % 2 == 0:
            noise = NOISES[index // 2 % len(NOISES)]
            clips.append(Clip(text, category, voice, noise, pcm.duration_s, encode(with_noise(pcm, noise), "ogg")))
    for text in QUESTIONS:
        pcm = speak(text, "piper joe")
        clips.append(Clip(text, "peer question", "piper joe", "", pcm.duration_s, encode(pcm, "ogg")))
    return clips


def with_noise(pcm: Pcm, noise: str) -> Pcm:
    """sox's `synth` noise, scaled to SNR_DB below the speech's power."""
    made = subprocess.run(["sox", "-n", "-r", str(WHISPER_SAMPLE_RATE), "-b", "16", "-c", "1", "-t", "wav", "-",
                           "synth", f"{pcm.duration_s:.3f}", noise], check=True, capture_output=True).stdout
    hiss = decode(made).samples[:len(pcm.samples)]
    hiss = np.pad(hiss, (0, len(pcm.samples) - len(hiss)))
    scale = np.sqrt(np.mean(pcm.samples**2) / np.mean(hiss**2) / 10 ** (SNR_DB / 10))
    return Pcm(np.clip(pcm.samples + scale * hiss, -1, 1).astype(np.float32), pcm.sample_rate)


# Each engine's process holds its transcriber here.
_transcriber = None


def _load(engine: Engine) -> tuple[float, float]:
    """In the engine's process: load it; the seconds that took and the process's memory before (MiB)."""
    global _transcriber
    from speech.transcriber import Transcriber  # the process's own imports belong to "before"

    before = _memory_mib("VmRSS")
    started = time.perf_counter()
    _transcriber = Transcriber(JuneSettings(stt_engine=engine.engine, stt_model=engine.model))
    return time.perf_counter() - started, before


def _hear(ogg: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    text = _transcriber.transcribe_bytes(ogg).text
    return text, (time.perf_counter() - started) * 1000


def _memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process; not ru_maxrss, which a spawned child inherits."""
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def measure(clips: list[Clip]) -> list[EngineResult]:
    """The engines take turns on each clip, each in its own process, after loading and one warm-up clip."""
    pools = [ProcessPoolExecutor(1, mp_context=get_context("spawn")) for _ in ENGINES]
    try:
        loaded = [pool.submit(_load, engine).result() for pool, engine in zip(pools, ENGINES)]
        for pool in pools:
            pool.submit(_hear, clips[0].ogg).result()
        heard: list[list[Heard]] = [[] for _ in ENGINES]
        for index, clip in enumerate(clips):
            turn = [(index + offset) % len(ENGINES) for offset in range(len(ENGINES))]
            for which in turn:
                text, ms = pools[which].submit(_hear, clip.ogg).result()
                heard[which].append(Heard(clip.text, clip.category, clip.voice, clip.noise, clip.duration_s, text,
                                          ms, *word_errors(clip.text, text)))
            latest = [results[-1] for results in heard]
            print(f"{index + 1:3}/{len(clips)} {clip.voice:<20} {clip.noise or 'clean':<10} "
                  + "  ".join(f"{h.latency_ms:5.0f} ms {h.word_errors:2} err" for h in latest), flush=True)
        peaks = [pool.submit(_memory_mib, "VmHWM").result() for pool in pools]
    finally:
        for pool in pools:
            pool.shutdown()
    return [summarise(engine, load_s, before, peak, results)
            for engine, (load_s, before), peak, results in zip(ENGINES, loaded, peaks, heard)]


def summarise(engine: Engine, load_s: float, before: float, peak: float, heard: list[Heard]) -> EngineResult:
    def wer_of(chosen: list[Heard]) -> float:
        return sum(h.word_errors for h in chosen) / sum(h.words for h in chosen)

    latencies = [h.latency_ms for h in heard]
    return EngineResult(
        engine=engine.label, load_s=round(load_s, 2), wer=wer_of(heard),
        wer_clean=wer_of([h for h in heard if not h.noise]), wer_noisy=wer_of([h for h in heard if h.noise]),
        wer_by_category={category: wer_of([h for h in heard if h.category == category])
                         for category in dict.fromkeys(h.category for h in heard)},
        median_latency_ms=statistics.median(latencies),
        p95_latency_ms=float(np.percentile(latencies, 95)),
        real_time_factor=sum(latencies) / 1000 / sum(h.duration_s for h in heard),
        process_rss_mib=round(before, 1), peak_rss_mib=round(peak, 1), heard=heard,
    )


def wer_difference(a: list[Heard], b: list[Heard], rounds: int = 10_000) -> tuple[float, float]:
    """The 95 % interval of WER(a) - WER(b) by a paired bootstrap: the same clips drawn for both."""
    errors = np.array([[x.word_errors, y.word_errors] for x, y in zip(a, b)])
    words = np.array([x.words for x in a])
    drawn = np.random.default_rng(0).integers(0, len(a), (rounds, len(a)))
    difference = (errors[drawn, 0].sum(1) - errors[drawn, 1].sum(1)) / words[drawn].sum(1)
    low, high = np.percentile(difference, [2.5, 97.5])
    return float(low), float(high)


def english_choice(results: list[EngineResult], interval: tuple[float, float]) -> str:
    """What `JUNE_STT_ENGINE=auto` takes for English: Moonshine only if it is faster than Whisper tiny.en (the model
    it replaces) and its word error rate is no worse: lower, or not worse beyond the bootstrap's 95 % interval."""
    moonshine, whisper = results[0], results[1]
    as_accurate = moonshine.wer <= whisper.wer or interval[0] <= 0
    wins = as_accurate and moonshine.median_latency_ms < whisper.median_latency_ms
    return moonshine.engine if wins else whisper.engine


def plot(results: list[EngineResult], clips: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.engine for r in results]
    colours = ["tab:green", "tab:blue", "tab:orange"]
    figure, axes = plt.subplots(1, 4, figsize=(16, 4))
    width = 0.38
    x = np.arange(len(results))
    for offset, label, values in ((-width / 2, "clean", [r.wer_clean for r in results]),
                                  (width / 2, "noise 10 dB", [r.wer_noisy for r in results])):
        axes[0].bar_label(axes[0].bar(x + offset, [v * 100 for v in values], width, label=label), fmt="%.1f")
    axes[0].set(title="word error rate (%)", xticks=x, xticklabels=names)
    axes[0].legend(loc="lower center")
    for offset, label, values in ((-width / 2, "median", [r.median_latency_ms for r in results]),
                                  (width / 2, "p95", [r.p95_latency_ms for r in results])):
        axes[1].bar_label(axes[1].bar(x + offset, values, width, label=label), fmt="%.0f")
    axes[1].set(title="latency per clip (ms)", xticks=x, xticklabels=names)
    axes[1].legend(loc="upper left")
    for axis, title, values in ((axes[2], "real-time factor", [r.real_time_factor for r in results]),
                                (axes[3], "peak memory of the process (MiB)", [r.peak_rss_mib for r in results])):
        axis.bar_label(axis.bar(names, values, color=colours), fmt="%.3g")
        axis.set_title(title)
    for axis in axes:
        axis.tick_params(axis="x", labelsize=8)
    figure.suptitle(f"English speech to text on {clips} clips ({len(VOICES)} voices, half also with noise), "
                    f"{os.cpu_count()} CPUs, 1 thread each")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    clips = speak_clips()
    print(f"{len(clips)} clips, {sum(c.duration_s for c in clips):.0f} s of speech; engines in turn: "
          + ", ".join(e.label for e in ENGINES), flush=True)
    results = measure(clips)
    for r in results:
        print(f"{r.engine:<18} WER {r.wer:6.1%} (clean {r.wer_clean:.1%}, noise {r.wer_noisy:.1%})  median "
              f"{r.median_latency_ms:4.0f} ms  p95 {r.p95_latency_ms:4.0f} ms  RTF {r.real_time_factor:.3f}  "
              f"peak {r.peak_rss_mib:.0f} MiB (+{r.model_mib:.0f})  load {r.load_s:.2f} s")
    interval = wer_difference(results[0].heard, results[1].heard)
    print(f"WER {results[0].engine} - {results[1].engine}: {results[0].wer - results[1].wer:+.1%} "
          f"(95 % interval {interval[0]:+.1%} to {interval[1]:+.1%})")
    choice = english_choice(results, interval)
    settings = JuneSettings()
    report = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()[0]},
        "settings": {"stt_cpu_threads": settings.stt_cpu_threads, "stt_beam_size": settings.stt_beam_size,
                     "stt_compute_type": settings.stt_compute_type},
        "clips": len(clips), "utterances": sum(len(texts) for texts in UTTERANCES.values()) + len(QUESTIONS),
        "voices": list(VOICES), "noises": list(NOISES), "snr_db": SNR_DB,
        "audio_s": round(sum(c.duration_s for c in clips), 1),
        "wer_difference_moonshine_minus_tiny_en": {"estimate": results[0].wer - results[1].wer,
                                                   "interval_95": list(interval)},
        "english_choice": choice,
        "engines": [asdict(r) | {"model_mib": round(r.model_mib, 1)} for r in results],
    }
    (args.output / "stt_models.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, len(clips), args.output / "stt_models.png")
    print(f"English: {choice}; wrote {args.output / 'stt_models.json'} and {args.output / 'stt_models.png'}")


if __name__ == "__main__":
    main()
