"""The agent on requests that need a tool, with known answers: fast path vs the full loop.

    python -m benchmarks.agent [--output benchmarks/results]

Starts the graph for its LanguageModel and runs three agents over that model in this process:
`fast` (no tools: one LLM call), `loop` (the full loop with the hybrid planner, June's default)
and `model-planner` (the full loop with every plan written by the model). Reports task success,
plan and tool-call validity, median latency and LLM calls per request. Writes `agent.json` and
`agent.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.cache import TtlLruCache
from agent.history import ConversationStore
from agent.loop import Agent, AgentLimits
from agent.notes import NoteStore
from agent.toolbox import build_tools
from agent.tools.base import ToolContext
from deployments.settings import JuneSettings
from graphs.launch import APP_NAME, deploy, free_port, start_ray, stop

Check = Callable[[str, str], bool]  # (request, reply) -> answered correctly


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]


def number(expected: float, tolerance: float = 0.005) -> Check:
    """The reply states the expected number (within 0.5%) more often than the request already did."""

    def close(found: list[float]) -> int:
        return sum(abs(n - expected) <= max(abs(expected) * tolerance, 0.01) for n in found)

    return lambda request, reply: close(_numbers(reply)) > close(_numbers(request))


def words(*expected: str) -> Check:
    return lambda request, reply: all(word.lower() in reply.lower() for word in expected)


def now_in(zone: str) -> datetime:
    return datetime.now(ZoneInfo(zone))


def hour_in(zone: str) -> Check:
    return lambda request, reply: now_in(zone).strftime("%H:") in reply


@dataclass(frozen=True)
class Task:
    category: str
    request: str
    check: Check


def tasks() -> list[Task]:
    today = now_in("UTC")
    arithmetic = [("What is 12 times 7?", 84), ("What is 144 divided by 12?", 12), ("What is 15% of 80?", 12),
                  ("What is 2 to the power of 10?", 1024), ("What is 3.5 plus 4.25?", 7.75),
                  ("What is the square root of 169?", 13), ("What is 1234 minus 567?", 667),
                  ("Calculate 17 * 23", 391), ("What is 99 squared?", 9801), ("What is 1000 divided by 8?", 125)]
    units = [("Convert 5 miles to km", 8.04672), ("How many pounds is 10 kg?", 22.0462),
             ("Convert 100 fahrenheit to celsius", 37.7778), ("Convert 2 liters to ml", 2000),
             ("How many feet is 3 meters?", 9.84252), ("Convert 60 mph to km/h", 96.5606),
             ("Convert 1 GiB to MB", 1073.74), ("Convert 500 grams to ounces", 17.637),
             ("Convert 30 celsius to fahrenheit", 86), ("How many minutes is 3 hours?", 180)]
    return [
        *(Task("arithmetic", q, number(a)) for q, a in arithmetic),
        *(Task("units", q, number(a)) for q, a in units),
        Task("time", "What time is it in Tokyo?", hour_in("Asia/Tokyo")),
        Task("time", "What time is it in London?", hour_in("Europe/London")),
        Task("time", "What time is it in New York?", hour_in("America/New_York")),
        Task("time", "What is the date today?", words(str(today.day), today.strftime("%B"))),
        Task("time", "What day is it today?", words(today.strftime("%A"))),
        Task("time", "What is the time in UTC?", hour_in("UTC")),
        Task("notes", "Remember that my locker code is 4312.", words("4312")),
        Task("notes", "What did I ask you to remember about my locker?", words("4312")),
        Task("notes", "Remember that the parking spot is B7.", words("B7")),
        Task("notes", "What did I ask you to remember about the parking spot?", words("B7")),
        Task("notes", "Remember that my sister's birthday is on 14 March.", words("14", "March")),
        Task("notes", "What did I ask you to remember about my sister's birthday?", words("14", "March")),
    ]


@dataclass(frozen=True)
class Outcome:
    mode: str
    category: str
    request: str
    reply: str
    success: bool
    latency_ms: float
    llm_calls: int
    tool_calls: int
    tool_calls_ok: int
    plans_valid: int
    plans_invalid: int
    route: str


async def run_mode(mode: str, bot: Agent, user: str) -> list[Outcome]:
    outcomes = []
    for task in tasks():
        started = time.perf_counter()
        reply = await bot.respond(task.request, ToolContext(user, f"bench-{mode}"), [])
        latency = (time.perf_counter() - started) * 1000
        trace = reply.trace
        invalid = sum("invalid" in r for r in trace.reflections)
        success = task.check(task.request, reply.text)
        outcome = Outcome(mode, task.category, task.request, reply.text, success, round(latency, 1),
                          trace.llm_calls, len(trace.tool_calls), sum(c.status == "ok" for c in trace.tool_calls),
                          len(trace.plans), invalid, trace.route)
        print(f"[{mode}] {'ok  ' if outcome.success else 'FAIL'} {latency:6.0f} ms  {task.request!r} -> "
              f"{reply.text[:80]!r}", flush=True)
        outcomes.append(outcome)
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    summary = {}
    for mode in dict.fromkeys(o.mode for o in outcomes):
        rows = [o for o in outcomes if o.mode == mode]
        calls = sum(o.tool_calls for o in rows)
        plans = sum(o.plans_valid + o.plans_invalid for o in rows)
        summary[mode] = {
            "task_success_rate": round(sum(o.success for o in rows) / len(rows), 3),
            "tool_call_validity_rate": round(sum(o.tool_calls_ok for o in rows) / calls, 3) if calls else None,
            "plan_validity_rate": round(sum(o.plans_valid for o in rows) / plans, 3) if plans else None,
            "median_latency_ms": round(statistics.median(o.latency_ms for o in rows), 1),
            "llm_calls_per_request": round(sum(o.llm_calls for o in rows) / len(rows), 2),
            **{f"success_{category}": round(sum(o.success for o in rows if o.category == category)
                                            / sum(o.category == category for o in rows), 3)
               for category in dict.fromkeys(o.category for o in rows)},
        }
    return summary


def plot(summary: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(summary)
    categories = [k.removeprefix("success_") for k in summary[modes[0]] if k.startswith("success_")]
    figure, (success_axis, latency_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        values = [summary[mode][f"success_{c}"] * 100 for c in categories]
        bars = success_axis.bar([i + index * width for i in range(len(categories))], values, width, label=mode)
        success_axis.bar_label(bars, fmt="%.0f", fontsize=8)
    success_axis.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(categories))], categories)
    success_axis.set_ylabel("task success (%)")
    success_axis.set_ylim(0, 110)
    success_axis.legend()
    success_axis.set_title("success by category")
    bars = latency_axis.bar(modes, [summary[m]["median_latency_ms"] for m in modes], color="tab:gray")
    latency_axis.bar_label(bars, labels=[f"{summary[m]['median_latency_ms']:.0f} ms\n"
                                         f"{summary[m]['llm_calls_per_request']:.2f} LLM calls" for m in modes],
                           fontsize=8)
    latency_axis.set_ylabel("median latency (ms)")
    latency_axis.set_title("latency and LLM calls per request")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


async def run_all(settings: JuneSettings, data_dir: Path) -> list[Outcome]:
    from ray import serve

    from deployments.agent import HandleChatModel

    model = HandleChatModel(serve.get_deployment_handle("LanguageModel", app_name=APP_NAME), settings)
    tools = build_tools(NoteStore(data_dir / "notes.db"), ConversationStore(data_dir / "turns.db"))
    limits = AgentLimits(settings.agent_max_iterations, settings.agent_max_tool_calls, settings.agent_max_seconds)

    def make(planner: str, with_tools: bool) -> Agent:
        return Agent(model, tools if with_tools else [], system_prompt=settings.system_prompt, limits=limits,
                     planner=planner, plan_cache=TtlLruCache(), max_tokens=settings.llm_max_tokens)

    outcomes = []
    for mode, bot in (("fast", make("hybrid", False)), ("loop", make("hybrid", True)),
                      ("model-planner", make("model", True))):
        outcomes += await run_mode(mode, bot, user=f"bench-{mode}")
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = JuneSettings(port=free_port(), data_dir=Path(data_dir))
        if settings.llm_seed is None:
            settings = settings.model_copy(update={"llm_seed": 7})
        print("starting the graph for its language model ...", flush=True)
        start_ray()
        try:
            deploy(settings, access_log=False)
            outcomes = asyncio.run(run_all(settings, Path(data_dir)))
        finally:
            stop()
    summary = summarise(outcomes)
    report = {"model": settings.llm_model, "seed": settings.llm_seed, "tasks": len(tasks()), "summary": summary,
              "outcomes": [asdict(o) for o in outcomes]}
    (args.output / "agent.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(summary, args.output / "agent.png")
    for mode, figures in summary.items():
        print(mode, json.dumps(figures))
    print(f"wrote {args.output / 'agent.json'} and {args.output / 'agent.png'}")


if __name__ == "__main__":
    main()
