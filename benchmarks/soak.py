"""Soak test: mixed voice, chat and streamed load on the graph for minutes; nothing may be lost or leak.

    python -m benchmarks.soak [--minutes 10] [--clients 4] [--quick] [--output benchmarks/results]

Starts Ray and the graph in-process (embedded models, a fresh data folder) and runs `--clients` clients
that each send, one after another, a spoken question to /v1/voice, a text question to /v1/chat and a
spoken question to /v1/voice/stream, in turn, each with an Idempotency-Key and a conversation of its
own. It counts requests served, errors by class, and lost answers — a 200 without a reply, a stream that
ends without `done`, or an answered request whose turn is not in the conversation's history at the end —
and samples the RSS of every replica (with the processes it started, e.g. vLLM's engine) at the start and
the end. Writes `soak.json` and `soak.png` to the output folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse
import psutil

from benchmarks.pipeline import cpu_model
from benchmarks.speech_samples import QUESTIONS, speak_samples
from common.settings import JuneSettings
from graphs.launch import APP_NAME, deploy, free_port, start_ray, stop

TEXT_QUESTIONS = ("What is seven times eight?", "Say something nice about autumn.", "How many minutes are in a day?",
                  "What is the capital of Japan?")
ROUTES = ("voice", "chat", "stream")
BUCKET_S = 30.0
HTTP_TIMEOUT_S = 180.0


@dataclass
class Tally:
    served: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # "route: class"
    lost: list[str] = field(default_factory=list)
    answered: Counter = field(default_factory=Counter)  # conversation → answered requests with a stored turn
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {route: [] for route in ROUTES})
    finished_at: list[tuple[float, str]] = field(default_factory=list)


def replica_memory() -> dict[str, dict[str, float]]:
    """RSS of each replica process (Ray titles them `ray::ServeReplica:<app>:<deployment>`), alone and with
    the processes it started (vLLM's engine), in MB."""
    memory: dict[str, dict[str, float]] = {}
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if not title.startswith("ray::ServeReplica:"):
            continue
        try:
            own = process.memory_info().rss
            tree = own + sum(child.memory_info().rss for child in process.children(recursive=True))
        except psutil.Error:
            continue
        label = title.split()[0].split(":")[-1]
        while label in memory:
            label += "+"
        memory[label] = {"rss_mb": round(own / 2**20, 1), "rss_with_children_mb": round(tree / 2**20, 1)}
    return memory


async def client(number: int, url: str, headers: dict[str, str], deadline: float, questions: list[bytes], tally: Tally,
                 started: float) -> None:
    conversation = f"soak-{number}"
    user = f"soak:{number}"
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=HTTP_TIMEOUT_S) as http:
        turn = 0
        while time.monotonic() < deadline:
            route = ROUTES[turn % len(ROUTES)]
            audio = questions[turn % len(questions)]
            text = TEXT_QUESTIONS[turn % len(TEXT_QUESTIONS)]
            turn += 1
            key = {"Idempotency-Key": f"soak-{number}-{uuid.uuid4().hex}"}
            fields = {"conversation_id": conversation, "user_id": user}
            sent = time.perf_counter()
            try:
                if route == "voice":
                    response = await http.post("/v1/voice", files={"audio": ("q.ogg", audio, "audio/ogg")},
                                               data=fields, headers=key)
                    ok = response.status_code == 200 and _answered(response.json(), tally, "voice", conversation)
                elif route == "chat":
                    response = await http.post("/v1/chat", json={"text": text, **fields}, headers=key)
                    ok = response.status_code == 200 and _answered(response.json(), tally, "chat", conversation)
                else:
                    ok, response = await _stream(http, audio, fields, tally, conversation)
            except httpx.HTTPError as error:
                tally.errors[f"{route}: {type(error).__name__}"] += 1
                continue
            if response.status_code != 200:
                code = _error_code(response)
                tally.errors[f"{route}: {response.status_code} {code}"] += 1
                continue
            if ok:
                tally.served[route] += 1
                tally.latencies_ms[route].append((time.perf_counter() - sent) * 1000)
                tally.finished_at.append((time.monotonic() - started, route))


def _answered(body: dict, tally: Tally, route: str, conversation: str) -> bool:
    if not body.get("reply"):
        tally.lost.append(f"{route}: 200 without a reply")
        return False
    if body.get("transcript", "x"):  # a question June heard is stored as a turn
        tally.answered[conversation] += 1
    return True


async def _stream(http: httpx.AsyncClient, audio: bytes, fields: dict, tally: Tally,
                  conversation: str) -> tuple[bool, httpx.Response]:
    async with aconnect_sse(http, "POST", "/v1/voice/stream", files={"audio": ("q.ogg", audio, "audio/ogg")},
                            data=fields) as source:
        response = source.response
        if response.status_code != 200:
            await response.aread()
            return False, response
        events, done = [], None
        async for event in source.aiter_sse():
            events.append(event.event)
            if event.event == "done":
                done = event.json()
    if "error" in events:
        tally.errors["stream: error event"] += 1
        return False, response
    if done is None or not done.get("reply"):
        tally.lost.append("stream: ended without a done event and a reply")
        return False, response
    if done.get("transcript"):
        tally.answered[conversation] += 1
    return True, response


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "not-json"


def check_history(clients: int, tally: Tally) -> None:
    """Every answered request must have left its exchange (two turns) in its conversation."""
    from ray import serve

    agent = serve.get_deployment_handle("Agent", app_name=APP_NAME)
    for number in range(clients):
        conversation = f"soak-{number}"
        stored = len(agent.history.remote(f"soak:{number}", conversation).result()) // 2
        expected = tally.answered[conversation]
        if stored < min(expected, 6):  # history keeps the newest turns only (JUNE_HISTORY_MAX_TURNS)
            tally.lost.append(f"{conversation}: {expected} answered, {stored} exchanges stored")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (load, memory) = plt.subplots(1, 2, figsize=(13, 4.5))
    buckets: dict[str, Counter] = {route: Counter() for route in ROUTES}
    for at, route in report["finished_at"]:
        buckets[route][int(at // BUCKET_S)] += 1
    last = max((int(at // BUCKET_S) for at, _ in report["finished_at"]), default=0)
    for route in ROUTES:
        load.plot([i * BUCKET_S / 60 for i in range(last + 1)],
                  [buckets[route][i] / BUCKET_S for i in range(last + 1)], marker="o", label=route)
    load.set(xlabel="minutes", ylabel="requests/s answered", title=f"{report['clients']} clients, mixed load")
    load.legend()
    names = sorted(set(report["memory_start"]) | set(report["memory_end"]))
    positions = range(len(names))
    start = [report["memory_start"].get(n, {}).get("rss_with_children_mb", 0) for n in names]
    end = [report["memory_end"].get(n, {}).get("rss_with_children_mb", 0) for n in names]
    memory.bar([p - 0.2 for p in positions], start, 0.4, label="start")
    memory.bar([p + 0.2 for p in positions], end, 0.4, label="end")
    memory.set_xticks(list(positions), names, rotation=20)
    memory.set(ylabel="RSS with children (MB)", title="replica memory")
    memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run(minutes: float, clients: int, output: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="june-soak-") as data:
        settings = JuneSettings(port=free_port(), data_dir=Path(data), llm_seed=7)
        print(f"soak: starting the graph ({settings.llm_model}) …", flush=True)
        start_ray()
        try:
            url = deploy(settings, access_log=False)
            print("soak: speaking the questions …", flush=True)
            questions = [sample.ogg for sample in speak_samples(QUESTIONS[:4], settings)]
            memory_start = replica_memory()
            tally = Tally()
            started = time.monotonic()

            async def drive() -> None:
                deadline = started + minutes * 60
                progress = asyncio.create_task(_progress(tally, started, deadline))
                await asyncio.gather(*(client(n, url, settings.client_headers, deadline, questions, tally, started)
                                       for n in range(clients)))
                progress.cancel()

            asyncio.run(drive())
            wall_s = time.monotonic() - started
            check_history(clients, tally)
            memory_end = replica_memory()
        finally:
            stop()
    report = {
        "minutes": minutes, "clients": clients, "wall_s": round(wall_s, 1), "model": settings.llm_model,
        "cpu": cpu_model(), "cores": psutil.cpu_count(),
        "served": dict(tally.served), "served_total": sum(tally.served.values()),
        "errors": dict(tally.errors), "errors_total": sum(tally.errors.values()),
        "lost": tally.lost, "lost_total": len(tally.lost),
        "median_ms": {route: round(sorted(v)[len(v) // 2], 1) for route, v in tally.latencies_ms.items() if v},
        "memory_start": memory_start, "memory_end": memory_end, "finished_at": tally.finished_at,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "soak.json").write_text(json.dumps(report, indent=2))
    plot(report, output / "soak.png")
    return report


async def _progress(tally: Tally, started: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        await asyncio.sleep(30)
        print(f"soak: {time.monotonic() - started:.0f} s, served {sum(tally.served.values())}, "
              f"errors {sum(tally.errors.values())}, lost {len(tally.lost)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a 20-second smoke run with 2 clients")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    minutes, clients = (1 / 3, 2) if args.quick else (args.minutes, args.clients)
    report = run(minutes, clients, args.output)
    print(json.dumps({key: report[key] for key in ("served", "errors", "lost_total", "median_ms")}, indent=2))
    for label, memory in (("start", report["memory_start"]), ("end", report["memory_end"])):
        print(f"RSS at {label}: " + ", ".join(f"{n} {m['rss_with_children_mb']:.0f} MB" for n, m in memory.items()))


if __name__ == "__main__":
    main()
