"""The LanguageModel deployment on CPU with each vLLM executor: what it costs the rest of the machine.

    python -m benchmarks.llm_engine [--quick] [--executors uni,mp] [--output benchmarks/results]

For each executor (`JUNE_LLM_CPU_EXECUTOR`), the LanguageModel deployment alone is started on a fresh
local Ray instance and asked the same questions, streamed, at temperature 0. Measured per executor:
start-up time, time to first token and tokens/s, the CPU the engine's processes burn in the two
seconds after a reply (an engine that spins takes the cores Whisper and Piper need), a Whisper
transcription run in this process right after a reply and again after a quiet pause, and the
engine's processes' memory (RSS and PSS) at idle. Writes `llm_engine.json` and `llm_engine.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from benchmarks.memory import memory_of
from benchmarks.speech_samples import QUESTIONS, speak_samples
from common.llm_client import LANGUAGE_MODEL, LanguageModelClient
from common.settings import JuneSettings
from graphs.launch import free_port, start_ray, stop
from speech.audio import decode
from speech.transcriber import Transcriber

APP = "llm-engine-bench"
IDLE_WINDOW_S = 2.0
QUIET_PAUSE_S = 3.0
MAX_TOKENS = 64


@dataclass
class ExecutorRun:
    executor: str
    start_s: float
    ttft_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    idle_cpu_after_reply: list[float] = field(default_factory=list)  # CPU-seconds per second, all engine processes
    stt_right_after_reply_ms: list[float] = field(default_factory=list)
    stt_after_pause_ms: list[float] = field(default_factory=list)
    processes: list[dict] = field(default_factory=list)  # name, rss_mb, pss_mb at idle

    def summary(self) -> dict:
        median = lambda values: round(statistics.median(values), 3) if values else None  # noqa: E731
        return {
            "executor": self.executor, "start_s": round(self.start_s, 1),
            "ttft_ms": median(self.ttft_ms), "tokens_per_s": median(self.tokens_per_s),
            "idle_cpu_after_reply": median(self.idle_cpu_after_reply),
            "stt_right_after_reply_ms": median(self.stt_right_after_reply_ms),
            "stt_after_pause_ms": median(self.stt_after_pause_ms),
            "engine_processes": len(self.processes),
            "engine_rss_mb": round(sum(p["rss_mb"] for p in self.processes)),
            "engine_pss_mb": round(sum(p["pss_mb"] for p in self.processes)),
        }


def engine_processes() -> list[psutil.Process]:
    """The LanguageModel replica and every process it started (vLLM's engine core, its worker)."""
    for process in psutil.process_iter(["cmdline"]):
        if any("LanguageModel" in part for part in process.info["cmdline"] or []):
            return [process, *process.children(recursive=True)]
    raise RuntimeError("no LanguageModel replica process found")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def stream_one(llm: LanguageModelClient, settings: JuneSettings, question: str) -> tuple[float, float]:
    """(time to first token in ms, tokens per second after it) for one streamed answer."""
    request = {"model": settings.engine_model_name, "temperature": 0.0, "max_tokens": MAX_TOKENS,
               "messages": [{"role": "user", "content": question}]}
    started = time.perf_counter()
    first = None
    pieces = 0
    async for chunk in llm.chunks(request):
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            first = first or time.perf_counter()
            pieces += 1
    ended = time.perf_counter()
    first = first or ended
    return (first - started) * 1000, (pieces - 1) / max(ended - first, 1e-6)


def measure(executor: str, questions: list[str], stt_audio, transcriber: Transcriber) -> ExecutorRun:
    from ray import serve

    from deployments.llm import build_language_model

    settings = JuneSettings(llm_cpu_executor=executor)
    start_ray()
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    started = time.monotonic()
    serve.run(build_language_model(settings), name=APP, route_prefix=None)
    run = ExecutorRun(executor, time.monotonic() - started)
    print(f"[{executor}] ready in {run.start_s:.1f} s", flush=True)
    llm = LanguageModelClient.of_handle(serve.get_deployment_handle(LANGUAGE_MODEL, app_name=APP))
    processes = engine_processes()
    asyncio.run(stream_one(llm, settings, "Say hello."))  # warm-up
    time.sleep(QUIET_PAUSE_S)
    run.processes = memory_of(processes).summary()["processes"]
    for index, question in enumerate(questions):
        ttft, rate = asyncio.run(stream_one(llm, settings, question))
        run.ttft_ms.append(ttft)
        run.tokens_per_s.append(rate)
        clip = stt_audio[index % len(stt_audio)]
        began = time.perf_counter()
        transcriber.transcribe(clip)
        run.stt_right_after_reply_ms.append((time.perf_counter() - began) * 1000)
        asyncio.run(stream_one(llm, settings, question))
        before = cpu_seconds(processes)
        time.sleep(IDLE_WINDOW_S)
        run.idle_cpu_after_reply.append((cpu_seconds(processes) - before) / IDLE_WINDOW_S)
        time.sleep(QUIET_PAUSE_S - IDLE_WINDOW_S)
        began = time.perf_counter()
        transcriber.transcribe(clip)
        run.stt_after_pause_ms.append((time.perf_counter() - began) * 1000)
        print(f"[{executor}] {index + 1}/{len(questions)}: ttft {ttft:.0f} ms, {rate:.1f} tok/s, "
              f"idle CPU {run.idle_cpu_after_reply[-1]:.2f}, stt {run.stt_right_after_reply_ms[-1]:.0f}"
              f"/{run.stt_after_pause_ms[-1]:.0f} ms", flush=True)
    stop()
    return run


def plot(runs: list[ExecutorRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = [run.summary() for run in runs]
    names = [summary["executor"] for summary in summaries]
    panels = [("idle_cpu_after_reply", "engine CPU in the 2 s after a reply (cores)"),
              ("stt_right_after_reply_ms", "Whisper right after a reply (ms)"),
              ("tokens_per_s", "tokens/s (median)"), ("engine_pss_mb", "engine PSS at idle (MB)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5))
    for axis, (key, title) in zip(axes, panels):
        axis.bar(names, [summary[key] or 0 for summary in summaries], color=["#4c72b0", "#dd8452"][: len(names)])
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"LanguageModel on CPU by vLLM executor ({platform.node()}, {psutil.cpu_count()} cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two questions, for a smoke run")
    parser.add_argument("--executors", default="uni,mp")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    questions = list(QUESTIONS[:2] if args.quick else QUESTIONS)
    settings = JuneSettings()
    transcriber = Transcriber(settings)
    stt_audio = [decode(sample.ogg) for sample in speak_samples(questions[:3], settings)]
    runs = [measure(executor, questions, stt_audio, transcriber) for executor in args.executors.split(",")]
    args.output.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"node": platform.node(), "cores": psutil.cpu_count()}, "model": settings.llm_model,
              "max_tokens": MAX_TOKENS, "summary": [run.summary() for run in runs], "runs": [asdict(r) for r in runs]}
    (args.output / "llm_engine.json").write_text(json.dumps(result, indent=2))
    plot(runs, args.output / "llm_engine.png")
    for summary in result["summary"]:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
