"""Tunes the audio stages' autoscaling with a load test: which `target_ongoing_requests` serves best.

    python -m benchmarks.autoscaling [--profile cpu] [--targets 1,2,4] [--clients 1,2,4,8] [--step-s 20]

Starts Ray and the graph in-process with the given profile, then for each candidate target
redeploys SpeechToText and TextToSpeech with it (a light config update: no model reloads) and
drives stepped load at /v1/audio/transcriptions and /v1/audio/speech, half the clients each,
sampling the running replicas every half second. Per candidate and step it records median and
p95 latency, throughput, errors and replica-seconds; the recommendation is the candidate with
the lowest p95 at the heaviest step, preferring the higher target (fewer replicas) within 10 %.
Writes `autoscaling.json` and `autoscaling.png` to the output folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
import yaml

from benchmarks.pipeline import cpu_model, since_ms
from benchmarks.speech_samples import speak_samples
from common.settings import JuneSettings
from graphs.launch import deploy, free_port, start_ray, stop
from graphs.profiles import profile_path

AUDIO_STAGES = ("SpeechToText", "TextToSpeech")
QUESTION = "What is the weather like in Paris today, and should I take an umbrella?"
ANSWER = "It is sunny in Paris today. You will not need an umbrella."
SETTLE_DOWNSCALE_DELAY_S = 10


@dataclass
class StepResult:
    clients: int
    route: str
    median_ms: float
    p95_ms: float
    requests_per_s: float
    errors: int
    mean_replicas: float
    max_replicas: int


@dataclass
class CandidateResult:
    target_ongoing_requests: float
    max_ongoing_requests: int
    steps: list[StepResult] = field(default_factory=list)
    replica_seconds: dict[str, float] = field(default_factory=dict)
    seconds_to_first_upscale: dict[str, float | None] = field(default_factory=dict)
    replicas_over_time: list[tuple[float, int, int]] = field(default_factory=list)


def candidate_profile(base: str, target: float, folder: Path) -> Path:
    """The base profile with the audio stages' target (and a short downscale delay, to reset between runs)."""
    config = yaml.safe_load(profile_path(base).read_text())
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] in AUDIO_STAGES:
            deployment["max_ongoing_requests"] = max(4, int(2 * target))
            deployment["autoscaling_config"] |= {"target_ongoing_requests": target,
                                                 "downscale_delay_s": SETTLE_DOWNSCALE_DELAY_S}
    path = folder / f"{base}-target-{target:g}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class ReplicaSampler:
    """Running replicas of the audio stages, every half second, in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def running(self) -> tuple[int, int]:
        from ray import serve

        deployments = serve.status().applications["june"].deployments
        return tuple(deployments[name].replica_states.get("RUNNING", 0) for name in AUDIO_STAGES)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(self.elapsed(), 1), *self.running()))
            self._stop.wait(0.5)

    def __enter__(self) -> ReplicaSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if start <= s[0] <= end]


async def drive(url: str, headers: dict[str, str], clients: int, seconds: float,
                audio: bytes) -> dict[str, tuple[list[float], int]]:
    """`clients` clients per route, each sending one request after another for `seconds`."""
    deadline = time.perf_counter() + seconds
    results: dict[str, tuple[list[float], list[int]]] = {"stt": ([], [0]), "tts": ([], [0])}

    async def client(http: httpx.AsyncClient, route: str) -> None:
        latencies, errors = results[route]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if route == "stt":
                response = await http.post("/v1/audio/transcriptions", files={"file": ("q.ogg", audio, "audio/ogg")})
            else:
                response = await http.post("/v1/audio/speech", json={"model": "june", "input": ANSWER, "voice": "x"})
            if response.status_code == 200:
                latencies.append(since_ms(started))
            else:
                errors[0] += 1

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300,
                                 limits=httpx.Limits(max_connections=64)) as http:
        await asyncio.gather(*(client(http, route) for route in results for _ in range(clients)))
    return {route: (latencies, errors[0]) for route, (latencies, errors) in results.items()}


def wait_for_min_replicas(sampler: ReplicaSampler, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sampler.running() != (1, 1):
        time.sleep(1)


def measure_candidate(settings: JuneSettings, target: float, steps: list[int], step_s: float,
                      audio: bytes) -> CandidateResult:
    url = deploy(settings, access_log=False)
    result = CandidateResult(target, max(4, int(2 * target)))
    with ReplicaSampler() as sampler:
        wait_for_min_replicas(sampler)
        began = sampler.elapsed()
        for clients in steps:
            start = sampler.elapsed()
            measured = asyncio.run(drive(url, settings.client_headers, clients, step_s, audio))
            end = sampler.elapsed()
            window = sampler.between(start, end) or [(end, 0, 0)]
            for index, (route, (latencies, errors)) in enumerate(measured.items(), start=1):
                replicas = [sample[index] for sample in window]
                result.steps.append(StepResult(
                    clients, route,
                    round(float(np.median(latencies)), 1) if latencies else float("nan"),
                    round(float(np.percentile(latencies, 95)), 1) if latencies else float("nan"),
                    round(len(latencies) / (end - start), 3), errors,
                    round(float(np.mean(replicas)), 2), max(replicas),
                ))
            print(f"  target {target:g}, {clients} client(s)/route: "
                  + ", ".join(f"{s.route} p50 {s.median_ms:.0f} ms p95 {s.p95_ms:.0f} ms x{s.mean_replicas}"
                              for s in result.steps[-2:]), flush=True)
        window = sampler.between(began, sampler.elapsed())
        for index, name in enumerate(AUDIO_STAGES, start=1):
            result.replica_seconds[name] = round(sum(sample[index] * 0.5 for sample in window), 1)
            upscaled = [sample[0] - began for sample in window if sample[index] > 1]
            result.seconds_to_first_upscale[name] = round(upscaled[0], 1) if upscaled else None
        result.replicas_over_time = [(round(t - began, 1), stt, tts) for t, stt, tts in window]
    return result


def heaviest_p95(candidate: CandidateResult) -> float:
    heaviest = max(step.clients for step in candidate.steps)
    return float(np.mean([step.p95_ms for step in candidate.steps if step.clients == heaviest]))


def recommend(candidates: list[CandidateResult]) -> float:
    best = min(heaviest_p95(c) for c in candidates)
    good_enough = [c for c in candidates if heaviest_p95(c) <= best * 1.10]
    return max(c.target_ongoing_requests for c in good_enough)


def plot(candidates: list[CandidateResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, replicas) = plt.subplots(1, 2, figsize=(12, 4.5))
    for candidate in candidates:
        for route, style in (("stt", "-o"), ("tts", "--s")):
            steps = [s for s in candidate.steps if s.route == route]
            latency.plot([s.clients for s in steps], [s.p95_ms for s in steps], style,
                         label=f"{route}, target {candidate.target_ongoing_requests:g}")
        times = [t for t, *_ in candidate.replicas_over_time]
        replicas.step(times, [stt for _, stt, _ in candidate.replicas_over_time], where="post",
                      label=f"SpeechToText, target {candidate.target_ongoing_requests:g}")
    latency.set(xlabel="concurrent clients per route", ylabel="p95 latency (ms)", title="p95 latency under load")
    latency.set_xscale("log", base=2)
    latency.legend(fontsize=7)
    replicas.set(xlabel="seconds into the load", ylabel="running replicas", title="SpeechToText replicas")
    replicas.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--targets", default="1,2,4", help="candidate target_ongoing_requests, comma-separated")
    parser.add_argument("--clients", default="1,2,4,8", help="load steps: concurrent clients per route")
    parser.add_argument("--step-s", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    targets = [float(t) for t in args.targets.split(",")]
    steps = [int(c) for c in args.clients.split(",")]
    args.output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="june-autoscaling-"))

    base = JuneSettings(port=free_port(), llm_seed=7)
    [sample] = speak_samples([QUESTION], base)
    print(f"[autoscaling] profile {args.profile}, targets {targets}, clients/route {steps}, "
          f"{args.step_s:g} s per step; starting Ray and the graph ...", flush=True)
    start_ray()
    candidates = []
    try:
        for target in targets:
            settings = base.model_copy(update={"profile": str(candidate_profile(args.profile, target, work))})
            candidates.append(measure_candidate(settings, target, steps, args.step_s, sample.ogg))
    finally:
        stop()
    chosen = recommend(candidates)
    report = {
        "benchmark": "autoscaling",
        "profile": args.profile,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()},
        "question_seconds": round(sample.duration_s, 2),
        "step_seconds": args.step_s,
        "rule": "lowest mean p95 (stt, tts) at the heaviest step; the highest target within 10 % of it",
        "recommended_target_ongoing_requests": chosen,
        "candidates": [asdict(c) for c in candidates],
    }
    (args.output / "autoscaling.json").write_text(json.dumps(report, indent=2))
    plot(candidates, args.output / "autoscaling.png")
    for candidate in candidates:
        print(f"target {candidate.target_ongoing_requests:g}: heaviest-step p95 {heaviest_p95(candidate):.0f} ms, "
              f"replica-seconds {candidate.replica_seconds}, first upscale after {candidate.seconds_to_first_upscale} s")
    print(f"recommended target_ongoing_requests: {chosen:g} -> {args.output / 'autoscaling.json'}")


if __name__ == "__main__":
    main()
