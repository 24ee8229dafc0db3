"""Does answering at a pause lower hands-free June's first audio? `WS /v1/realtime` with preemption off and on.

    python -m benchmarks.realtime [--repetitions 3] [--output benchmarks/results] [--port N]

The pipeline benchmark's spoken questions (Piper at run time, decoded to 16 kHz PCM) are streamed at real-time
pace in 20 ms frames, followed by 1.5 s of silence, through one running graph. Measured from the end of the user's
speech (the clip's last sample) to the first `delta` and the first `audio` event, with preemption off and on,
interleaved per question (the order flips each repetition, so neither mode always meets a warm prefix cache).
`done`'s `head_start` says an answer begun at a pause was adopted; the pauses where one was cancelled are the
detector's "resumed" events on the same audio (the session's detector sees the same frames). A question said in
two halves with 0.4 s between them checks that the answer begun at that pause is cancelled and the whole
sentence answered. The pause lengths are compared on the same audio (the detector alone): how often a pause falls
inside a question, and how much earlier than the turn's end an answer begins. Writes `realtime.json` and `realtime.png` to the output folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from benchmarks.pipeline import machine_facts, running_graph
from benchmarks.speech_samples import QUESTIONS
from common.settings import JuneSettings
from graphs.launch import free_port
from speech.audio import WHISPER_SAMPLE_RATE, decode, encode
from speech.synthesizer import Synthesizer, load_backend
from speech.turns import TurnDetector, TurnRules

FRAME_S = 0.02
TRAILING_SILENCE_S = 1.5
ANSWER_TIMEOUT_S = 60.0
SPLIT = ("What is the capital", "of France?")
SPLIT_GAP_S = 0.4
PAUSE_SWEEP_MS = (150, 200, 250, 300, 350, 400)
DEFAULT_SEED = 7


@dataclass(frozen=True)
class Run:
    question: str
    mode: str  # "off" | "on"
    repetition: int
    first_delta_ms: float | None  # after the end of the user's speech
    first_audio_ms: float | None
    adopted: bool  # `done` carried `head_start`: the answer begun at a pause was kept
    head_start_ms: float | None
    transcript: str
    transcripts: int  # transcript events in the session (one per answered turn)
    error: str | None = None


@dataclass
class Report:
    machine: dict
    pause_ms: int
    end_silence_ms: int
    repetitions: int
    questions: list[str]
    runs: list[Run] = field(default_factory=list)
    split: list[Run] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def spoken(texts: tuple[str, ...], settings: JuneSettings) -> list[np.ndarray]:
    """Each text as the Piper voice says it, as 16 kHz float samples (through Opus, as a client would hear it)."""
    synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)
    return [decode(encode(synthesizer.synthesize(text), "ogg")).samples for text in texts]


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def converse(url: str, headers: dict[str, str], speech: np.ndarray, preempt: bool) -> dict:
    """Stream `speech` and then silence at real-time pace; the times of the first delta and audio after the
    speech's last sample, and the `done` event."""
    frame = int(FRAME_S * WHISPER_SAMPLE_RATE)
    audio = np.concatenate([speech, np.zeros(int(TRAILING_SILENCE_S * WHISPER_SAMPLE_RATE), np.float32)])
    frames = [pcm16(audio[i:i + frame]) for i in range(0, len(audio), frame)]
    speech_frames = -(-len(speech) // frame)
    seen: dict = {"transcripts": []}
    async with connect(url.replace("http://", "ws://", 1) + "/v1/realtime", additional_headers=headers,
                       max_size=2 ** 24, open_timeout=30) as socket:
        await socket.send(json.dumps({"type": "start", "preempt": preempt, "reply_format": "ogg"}))
        assert json.loads(await socket.recv())["type"] == "ready"
        started = time.perf_counter()
        speech_end = started + speech_frames * FRAME_S  # a microphone hands over a frame once it is recorded

        async def listen() -> None:
            while True:
                message = json.loads(await socket.recv())
                now = time.perf_counter()
                kind = message["type"]
                if kind in ("delta", "audio") and f"first_{kind}" not in seen:
                    seen[f"first_{kind}"] = round((now - speech_end) * 1000, 1)
                elif kind == "transcript":
                    seen["transcripts"].append(message["text"])
                elif kind in ("done", "error"):
                    seen[kind] = message
                    return

        listener = asyncio.create_task(listen())
        for index, data in enumerate(frames):
            await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_S - time.perf_counter()))
            await socket.send(data)
        await asyncio.wait_for(listener, ANSWER_TIMEOUT_S)
    return seen


def run_of(question: str, mode: str, repetition: int, seen: dict) -> Run:
    done = seen.get("done") or {}
    timings = done.get("timings_ms", {})
    error = seen.get("error", {}).get("error", {}).get("code") if "error" in seen else None
    return Run(question, mode, repetition, seen.get("first_delta"), seen.get("first_audio"), "head_start" in timings,
               timings.get("head_start"), " | ".join(seen["transcripts"]), len(seen["transcripts"]), error)


def cancelled_pauses(speech: np.ndarray, rules: TurnRules) -> int:
    """Answers begun at a pause and cancelled because the user went on: the detector's "resumed" events."""
    audio = np.concatenate([speech, np.zeros(int(TRAILING_SILENCE_S * WHISPER_SAMPLE_RATE), np.float32)])
    return [event.kind for event in TurnDetector(rules).feed(audio)].count("resumed")


def pause_sweep(speech: list[np.ndarray], end_silence_ms: int) -> dict[int, dict[str, float | int]]:
    """For each pause length: how often a pause fell inside the questions (an answer begun and cancelled) and how
    long before the turn's end the last pause came (the head start an adopted answer gets)."""
    sweep: dict[int, dict[str, float | int]] = {}
    for pause_ms in PAUSE_SWEEP_MS:
        rules = TurnRules(end_silence_ms=end_silence_ms, pause_ms=pause_ms)
        inside, head_starts = 0, []
        for sample in speech:
            audio = np.concatenate([sample, np.zeros(int(TRAILING_SILENCE_S * WHISPER_SAMPLE_RATE), np.float32)])
            step = int(FRAME_S * WHISPER_SAMPLE_RATE)
            detector, seen = TurnDetector(rules), []
            for start in range(0, len(audio), step):
                seen += [(event.kind, start + step) for event in detector.feed(audio[start:start + step])]
            inside += [kind for kind, _ in seen].count("resumed")
            last_pause = max(at for kind, at in seen if kind == "paused")
            ended = next(at for kind, at in seen if kind == "turn_ended")
            head_starts.append((ended - last_pause) * 1000 / WHISPER_SAMPLE_RATE)
        sweep[pause_ms] = {"pauses_inside_speech": inside, "head_start_median_ms": median(head_starts)}
    return sweep


def median(values: list[float | None], digits: int = 1) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.median(present)), digits) if present else None


def summarise(report: Report, speech: list[np.ndarray], rules: TurnRules) -> dict:
    by_mode = {mode: [r for r in report.runs if r.mode == mode] for mode in ("off", "on")}
    result: dict = {}
    for mode, runs in by_mode.items():
        result[mode] = {"first_audio_median_ms": median([r.first_audio_ms for r in runs]),
                        "first_delta_median_ms": median([r.first_delta_ms for r in runs]),
                        "n": len(runs), "errors": sum(r.error is not None for r in runs)}
    pairs = [(off, on) for off in by_mode["off"] for on in by_mode["on"]
             if (off.question, off.repetition) == (on.question, on.repetition)]
    for metric in ("first_audio", "first_delta"):
        off, on = result["off"][f"{metric}_median_ms"], result["on"][f"{metric}_median_ms"]
        result[f"{metric}_ratio_on_to_off"] = round(on / off, 3) if off and on else None
        paired = [(getattr(a, f"{metric}_ms"), getattr(b, f"{metric}_ms")) for a, b in pairs]
        paired = [(a, b) for a, b in paired if a is not None and b is not None]
        result[f"{metric}_paired"] = {"median_ratio_on_to_off": median([b / a for a, b in paired if a > 0], 3),
                                      "median_difference_ms": median([b - a for a, b in paired]),
                                      "on_sooner": sum(b < a for a, b in paired), "pairs": len(paired)}
    on_runs = by_mode["on"]
    result["adopted"] = sum(r.adopted for r in on_runs)
    result["not_adopted"] = len(on_runs) - result["adopted"]
    result["head_start_median_ms"] = median([r.head_start_ms for r in on_runs])
    result["cancelled_pauses_per_question"] = {q: cancelled_pauses(s, rules) for q, s in zip(report.questions, speech)}
    result["cancelled"] = report.repetitions * sum(result["cancelled_pauses_per_question"].values())
    result["pause_sweep"] = pause_sweep(speech, report.end_silence_ms)
    result["split"] = {"runs": len(report.split),
                       "whole_sentence_answered": sum(r.transcripts == 1 and "france" in r.transcript.lower()
                                                      and "capital" in r.transcript.lower() for r in report.split),
                       "first_audio_median_ms": median([r.first_audio_ms for r in report.split])}
    return result


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric, title in ((axes[0], "first_audio_ms", "first audio"), (axes[1], "first_delta_ms", "first delta")):
        data = [[getattr(r, metric) for r in report.runs if r.mode == mode and getattr(r, metric) is not None]
                for mode in ("off", "on")]
        axis.boxplot(data, showmeans=False)
        axis.set_xticks([1, 2], ["preemption off", f"on ({report.pause_ms} ms pause)"])
        for position, values in enumerate(data, start=1):
            axis.scatter(np.full(len(values), position) + np.linspace(-0.08, 0.08, len(values)), values, s=10,
                         alpha=0.6)
        axis.set_ylabel("ms after the end of the user's speech")
        axis.set_title(f"WS /v1/realtime: {title}")
    s = report.summary
    figure.suptitle(f"{len(report.questions)} spoken questions × {report.repetitions}, interleaved; turn ends after "
                    f"{report.end_silence_ms} ms of silence; adopted {s['adopted']}/{s['on']['n']}, "
                    f"first audio on/off {s['first_audio_ratio_on_to_off']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


async def measure(url: str, headers: dict[str, str], speech: list[np.ndarray], split: np.ndarray,
                  report: Report) -> None:
    print("[realtime] warming up: each question once", flush=True)
    for sample in speech:
        await converse(url, headers, sample, preempt=False)
    for repetition in range(report.repetitions):
        for number, (question, sample) in enumerate(zip(report.questions, speech)):
            modes = ("off", "on") if (repetition + number) % 2 == 0 else ("on", "off")
            for mode in modes:
                run = run_of(question, mode, repetition, await converse(url, headers, sample, preempt=mode == "on"))
                report.runs.append(run)
                print(f"[realtime] {repetition} {mode:3} first audio {run.first_audio_ms} ms, delta "
                      f"{run.first_delta_ms} ms, adopted {run.adopted}  {question}", flush=True)
        seen = await converse(url, headers, split, preempt=True)
        report.split.append(run_of(" … ".join(SPLIT), "on", repetition, seen))
        print(f"[realtime] split: {report.split[-1].transcript!r}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="the first N of the questions")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--port", type=int, default=0, help="HTTP port for the graph (default: a free one)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="june-realtime-") as data_dir:
        settings = JuneSettings(data_dir=Path(data_dir))
        if settings.llm_seed is None:
            settings = settings.model_copy(update={"llm_seed": DEFAULT_SEED})
        settings = settings.model_copy(update={"port": args.port or free_port(), "host": "127.0.0.1"})
        questions = list(QUESTIONS[:args.questions])
        speech = spoken(tuple(questions), settings)
        halves = spoken(SPLIT, settings)
        split = np.concatenate([halves[0], np.zeros(int(SPLIT_GAP_S * WHISPER_SAMPLE_RATE), np.float32), halves[1]])
        rules = TurnRules(end_silence_ms=settings.realtime_end_silence_ms, pause_ms=settings.realtime_preempt_ms)
        report = Report(machine_facts(settings, load_at_start), settings.realtime_preempt_ms,
                        settings.realtime_end_silence_ms, args.repetitions, questions)
        started = time.monotonic()
        with running_graph(settings) as url:
            asyncio.run(measure(url, settings.client_headers, speech, split, report))
        report.summary = summarise(report, speech, rules) | {"wall_s": round(time.monotonic() - started, 1)}
    (args.output / "realtime.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    plot(report, args.output / "realtime.png")
    print(json.dumps(report.summary, indent=2))
    print(f"wrote {args.output / 'realtime.json'} and {args.output / 'realtime.png'}")


if __name__ == "__main__":
    main()
