"""The LanguageModel on CPU by engine: llama.cpp on the shipped GGUF against vLLM on the converted bf16 folder.

    python -m benchmarks.llm_engine [--quick] [--models qwen2.5-0.5b,qwen2.5-1.5b] [--threads 1,2]

For each model, in one run: the LanguageModel deployment on llama.cpp and on vLLM (each alone on a fresh local Ray
instance, through its Serve handle, as the Agent calls it), and a bare `llama-server` on the same file with the same
options called over its socket without Ray or June's mapping. All with the first of `--threads`; June's llama.cpp
also with each other thread count. Each is asked the same ~400-token prompt for 128 tokens
(`ignore_eos`, temperature 0). Measured: start time; first token cold (the first request to a fresh server) and from
the prefix cache (the same prompt again); decode tokens/s after the first token (median of the repetitions); the
PSS of the engine's processes at idle; and, for the choice of threads, speech-to-text on a spoken question in
this process while the engine decodes, against the same transcription with the engine idle, and the engine's
decode rate meanwhile. Writes `llm_engine.json` and `llm_engine.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.memory import memory_of
from common.llm_client import LANGUAGE_MODEL, LanguageModelClient
from common.settings import JuneSettings
from graphs.launch import free_port, start_ray, stop
from llm.server import server_for
from models.language_model import resolve_language_model
from speech.audio import Pcm, decode
from speech.transcriber import Transcriber

APP = "llm-engine-bench"
DECODED_TOKENS = 128
QUIET_S = 2.0
# About 400 tokens of fixed head, as June's agent sends (system prompt and context), then the question.
SYSTEM = " ".join([
    "You are June, a friendly voice assistant in a family's home. Answer in short, plain sentences that sound",
    "natural when read aloud. You can set reminders and timers, keep notes, convert units, do arithmetic, tell",
    "the time in any city, and run small Python programs. When you do not know something, say so plainly and",
    "offer what you can do instead. Never invent facts about the family, their plans or their calendar.",
] * 5)
QUESTION = "Tell me about the history of the bicycle, from the first designs to the bicycles people ride today."


@dataclass
class EngineRun:
    label: str
    model: str
    engine: str
    threads: int
    start_s: float
    first_token_cold_ms: float = 0.0
    first_token_cached_ms: list[float] = field(default_factory=list)
    decode_tokens_per_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    processes: list[dict] = field(default_factory=list)
    stt_idle_ms: list[float] = field(default_factory=list)
    stt_while_decoding_ms: list[float] = field(default_factory=list)
    decode_tokens_per_s_with_stt: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label, "model": self.model, "engine": self.engine, "threads": self.threads,
            "start_s": round(self.start_s, 1),
            "decode_tokens_per_s": round(statistics.median(self.decode_tokens_per_s), 2),
            "first_token_cold_ms": round(self.first_token_cold_ms),
            "first_token_cached_ms": round(statistics.median(self.first_token_cached_ms)),
            "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
            "pss_mb": round(sum(p["pss_mb"] for p in self.processes)),
            "stt_idle_ms": round(statistics.median(self.stt_idle_ms)),
            "stt_while_decoding_ms": round(statistics.median(self.stt_while_decoding_ms)),
            "decode_tokens_per_s_with_stt": round(self.decode_tokens_per_s_with_stt, 2),
        }


Send = Callable[[dict[str, Any]], AsyncIterator[Any]]


async def timed_stream(send: Send, model: str) -> tuple[float, float, dict[str, Any]]:
    """(first token ms, decode tokens/s after it, usage) for one streamed answer of DECODED_TOKENS tokens."""
    body = {"model": model, "temperature": 0.0, "max_tokens": DECODED_TOKENS, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]}
    started = time.perf_counter()
    first = None
    usage: dict[str, Any] = {}
    async for chunk in LanguageModelClient(send).chunks(body):
        usage = chunk.get("usage") or usage
        if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    first = first or ended
    tokens = usage.get("completion_tokens", DECODED_TOKENS)
    return (first - started) * 1000, (tokens - 1) / max(ended - first, 1e-6), usage


@dataclass
class Listener:
    """June's speech-to-text in this process, transcribing one spoken question: the audio stage beside the
    engine."""

    transcriber: Transcriber
    clip: Pcm

    def transcribe_ms(self) -> float:
        started = time.perf_counter()
        self.transcriber.transcribe(self.clip)
        return (time.perf_counter() - started) * 1000


def beside_whisper(run: EngineRun, send: Send, model: str, listener: Listener,
                   loop: asyncio.AbstractEventLoop) -> None:
    """Speech-to-text with the engine idle, then three times while the engine decodes one answer."""
    run.stt_idle_ms = [listener.transcribe_ms() for _ in range(3)]
    decoded: list[tuple[float, float, dict[str, Any]]] = []
    answer = threading.Thread(target=lambda: decoded.append(loop.run_until_complete(timed_stream(send, model))))
    answer.start()
    time.sleep(1.0)  # past the cached prompt, into decoding
    run.stt_while_decoding_ms = [listener.transcribe_ms() for _ in range(3)]
    answer.join()
    run.decode_tokens_per_s_with_stt = decoded[0][1]


def measure(run: EngineRun, send: Send, model: str, processes: list[psutil.Process], repetitions: int,
            listener: Listener, loop: asyncio.AbstractEventLoop) -> EngineRun:
    cold, _, _ = loop.run_until_complete(timed_stream(send, model))
    run.first_token_cold_ms = cold
    for repetition in range(repetitions):
        first, rate, usage = loop.run_until_complete(timed_stream(send, model))
        run.first_token_cached_ms.append(first)
        run.decode_tokens_per_s.append(rate)
        run.prompt_tokens = usage.get("prompt_tokens", 0)
        run.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        print(f"[{run.label}] {repetition + 1}/{repetitions}: first token {first:.0f} ms (cold {cold:.0f}), "
              f"{rate:.1f} tok/s, cached {run.cached_tokens}/{run.prompt_tokens}", flush=True)
    time.sleep(QUIET_S)
    run.processes = memory_of(processes).summary()["processes"]
    beside_whisper(run, send, model, listener, loop)
    print(f"[{run.label}] speech-to-text {statistics.median(run.stt_idle_ms):.0f} ms idle, "
          f"{statistics.median(run.stt_while_decoding_ms):.0f} ms while decoding at "
          f"{run.decode_tokens_per_s_with_stt:.1f} tok/s", flush=True)
    return run


def replica_processes() -> list[psutil.Process]:
    """The LanguageModel replica and every process it started (llama-server, or vLLM's engine core)."""
    for process in psutil.process_iter(["cmdline"]):
        if any(LANGUAGE_MODEL in part for part in process.info["cmdline"] or []):
            return [process, *process.children(recursive=True)]
    raise RuntimeError("no LanguageModel replica process found")


def through_june(settings: JuneSettings, repetitions: int, listener: Listener) -> EngineRun:
    from ray import serve

    from deployments.llm import build_language_model

    facts = resolve_language_model(settings)
    start_ray()
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    started = time.monotonic()
    serve.run(build_language_model(settings, facts), name=APP, route_prefix=None)
    run = EngineRun(f"{settings.llm_model} {facts.engine} {settings.llm_threads}t", settings.llm_model, facts.engine,
                    settings.llm_threads, time.monotonic() - started)
    handle = serve.get_deployment_handle(LANGUAGE_MODEL, app_name=APP)
    loop = asyncio.new_event_loop()
    try:
        return measure(run, lambda body: handle.options(stream=True).chat_json.remote(body),
                       settings.engine_model_name, replica_processes(), repetitions, listener, loop)
    finally:
        loop.close()
        stop()


def bare_llama_server(settings: JuneSettings, repetitions: int, listener: Listener) -> EngineRun:
    """The same binary, file and options, spoken to over its socket: no Ray and no request mapping."""
    server = server_for(settings, resolve_language_model(settings).path)
    loop = asyncio.new_event_loop()
    started = time.monotonic()
    loop.run_until_complete(server.start(settings.startup_timeout_s))
    run = EngineRun(f"{settings.llm_model} bare llama-server {settings.llm_threads}t", settings.llm_model,
                    "llama-server", settings.llm_threads, time.monotonic() - started)

    async def send(body: dict[str, Any]) -> AsyncIterator[str]:
        async with server.http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    yield line

    try:
        return measure(run, send, settings.engine_model_name, [psutil.Process(server.pid)], repetitions,
                       listener, loop)
    finally:
        server.stop()
        loop.close()


def plot(summaries: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("decode_tokens_per_s", "decode tokens/s"), ("first_token_cold_ms", "first token, cold (ms)"),
              ("first_token_cached_ms", "first token, prefix-cached (ms)"), ("pss_mb", "engine PSS idle (MB)")]
    colours = {"llama.cpp": "#4c72b0", "vllm": "#dd8452", "llama-server": "#55a868"}
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4))
    for axis, (key, title) in zip(axes, panels):
        labels = [s["label"].replace("qwen2.5-", "").replace("bare llama-server", "bare") for s in summaries]
        axis.bar(labels, [s[key] for s in summaries], color=[colours[s["engine"]] for s in summaries])
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", labelsize=8, labelrotation=60)
    figure.suptitle(f"LanguageModel on CPU by engine ({psutil.cpu_count()} cores, {DECODED_TOKENS} tokens)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repetition, for a smoke run")
    parser.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b")
    parser.add_argument("--engines", default="llama.cpp,vllm,bare")
    parser.add_argument("--threads", default="1,2", help="llama.cpp threads to compare; the first for all")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    repetitions = 1 if args.quick else 3
    from benchmarks.speech_samples import QUESTIONS, speak_samples

    speech = JuneSettings()
    listener = Listener(Transcriber(speech), decode(speak_samples(QUESTIONS[:1], speech)[0].ogg))
    threads = [int(count) for count in args.threads.split(",")]
    runs = []
    for model in args.models.split(","):
        for engine in args.engines.split(","):
            for count in threads if engine == "llama.cpp" else threads[:1]:
                settings = JuneSettings(llm_model=model, llm_threads=count,
                                        llm_engine="llama.cpp" if engine == "bare" else engine)
                runs.append(bare_llama_server(settings, repetitions, listener) if engine == "bare" else
                            through_june(settings, repetitions, listener))
    summaries = [run.summary() for run in runs]
    ratios = {}
    for model in args.models.split(","):
        rate = {(s["engine"], s["threads"]): s["decode_tokens_per_s"] for s in summaries if s["model"] == model}
        first = threads[0]
        if ("llama.cpp", first) in rate and ("vllm", first) in rate:
            ratios[f"{model} llama.cpp/vllm decode"] = round(rate["llama.cpp", first] / rate["vllm", first], 2)
        if ("llama.cpp", first) in rate and ("llama-server", first) in rate:
            ratios[f"{model} bare/June decode"] = round(rate["llama-server", first] / rate["llama.cpp", first], 3)
    args.output.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"node": platform.node(), "cores": psutil.cpu_count(), "load_1m": psutil.getloadavg()[0]},
              "threads": threads, "decoded_tokens": DECODED_TOKENS, "repetitions": repetitions,
              "summary": summaries, "ratios": ratios, "runs": [asdict(run) for run in runs]}
    (args.output / "llm_engine.json").write_text(json.dumps(result, indent=2))
    plot(summaries, args.output / "llm_engine.png")
    for summary in summaries:
        print(json.dumps(summary))
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
