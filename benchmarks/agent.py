"""How well June answers requests written the way people speak, measured through its HTTP API.

    python -m benchmarks.agent [--models smollm2 qwen2.5-0.5b ...] [--planners hybrid model]
                               [--categories time memory ...] [--limit-per-category N]
                               [--output benchmarks/results] [--quick]

For every model × planner it deploys the real graph in this process (one Ray instance, the app
redeployed per configuration with a fresh data folder, seed 7 and a fixed time zone) and sends
each task of `benchmarks/agent_tasks.py` and `benchmarks/agent_followup_tasks.py` the way a user
would: the setup turns to `POST /v1/chat`, the scored turn to `POST /v1/chat/stream` (time to the
first text), every task in conversations and user ids of its own.

Beside June, the same model alone is the baseline: the bare engine on `/v1/chat/completions`, a
one-line system prompt, the task's turns in the same conversation as messages (with the bare
model's own replies), no tools, no notes.

Per configuration it reports task success (overall, per category, and the follow-up tasks apart
from the older ones) for June and the bare model, time to first text, tool-call validity and
invalid model plans, median and p95 latency, LLM calls and tokens per scored request (from the
trace), and the engine's decoding speed from 5 raw completions. `agent.json` and `agent.png` (for other
models than the default ones, `agent_<model>_….json` and `.png`, so a run of one model keeps the comparison) are
rewritten after every configuration. `--quick` runs one task per category on the first model and
planner only, into a temporary folder unless `--output` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from benchmarks.agent_followup_tasks import FOLLOWUP_TASKS
from benchmarks.agent_tasks import HOME_ZONE, TASKS, Answer, Task, Turn
from benchmarks.pipeline import cpu_model, since_ms, stat
from common.settings import JuneSettings
from graphs.launch import APP_NAME, deploy, free_port, start_ray, stop
from speech.sentences import split_sentences

DEFAULT_MODELS = ["smollm2", "qwen2.5-0.5b", "qwen2.5-1.5b"]
DEFAULT_PLANNERS = ["hybrid", "model"]
ALL_TASKS = [*TASKS, *FOLLOWUP_TASKS]
CATEGORIES: list[str] = list(dict.fromkeys(task.category for task in ALL_TASKS))
FOLLOWUP_PREFIX = "followup-"
BARE_SYSTEM_PROMPT = "You are a helpful voice assistant; answer in one or two short sentences."
SEED = 7
HTTP_TIMEOUT_S = 120.0
ONE_SENTENCE_TARGET_MS = 2500.0
SPEED_RUNS = 5
SPEED_REQUEST = {"messages": [{"role": "user", "content": "Tell me a short story about a cat."}],
                 "max_tokens": 128, "temperature": 0}


@dataclass(frozen=True)
class Config:
    model: str
    planner: str

    @property
    def name(self) -> str:
        return f"{self.model}-{self.planner}"


@dataclass(frozen=True)
class Exchange:
    """One `POST /v1/chat` as the user met it; status 0 when no HTTP answer came (timeout, reset)."""

    status: int
    reply: str
    error: str | None
    latency_ms: float
    trace: dict[str, Any]
    asked_at: datetime
    answered_at: datetime


@dataclass(frozen=True)
class BareOutcome:
    """The model alone on a task: its reply to the scored turn after its own replies to the setup turns."""

    category: str
    request: str
    reply: str
    success: bool
    first_text_ms: float | None
    error: str | None


@dataclass(frozen=True)
class Outcome:
    config: str
    model: str
    planner: str
    category: str
    request: str
    reply: str
    expected: str
    success: bool
    latency_ms: float
    first_text_ms: float | None
    http_status: int
    error: str | None
    sentences: int
    route: str | None
    llm_calls: int | None
    prompt_tokens: int | None
    cached_prompt_tokens: int | None
    completion_tokens: int | None
    tool_calls: list[dict[str, str]]
    history_turns: int | None
    invalid_plans: int
    plans: list[Any]
    reflections: list[str]
    setup: list[dict[str, Any]]


@dataclass
class ConfigRun:
    config: Config
    settings: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    engine: dict[str, Any] | None = None
    bare: list[BareOutcome] = field(default_factory=list)
    error: str | None = None


def now() -> datetime:
    return datetime.now(timezone.utc)


def post_chat(client: httpx.Client, url: str, text: str, conversation_id: str, user_id: str) -> Exchange:
    body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "trace": True}
    asked_at, started = now(), time.perf_counter()
    try:
        response = client.post(f"{url}/v1/chat", json=body)
    except httpx.HTTPError as error:
        return Exchange(0, "", f"{type(error).__name__}: {error}", since_ms(started), {}, asked_at, now())
    latency_ms, answered_at = since_ms(started), now()
    if response.status_code != 200:
        return Exchange(response.status_code, "", response.text, latency_ms, {}, asked_at, answered_at)
    payload = response.json()
    return Exchange(200, payload.get("reply") or "", None, latency_ms, payload.get("trace") or {}, asked_at,
                    answered_at)


def stream_chat(client: httpx.Client, url: str, text: str, conversation_id: str, user_id: str
                ) -> tuple[Exchange, float | None]:
    """One `POST /v1/chat/stream` with the trace: the exchange and the time to its first text."""
    body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "trace": True}
    asked_at, started = now(), time.perf_counter()
    first: float | None = None
    done, failure = {}, None
    try:
        with connect_sse(client, "POST", f"{url}/v1/chat/stream", json=body) as events:
            response = events.response
            if response.status_code != 200:
                response.read()
                return Exchange(response.status_code, "", response.text, since_ms(started), {}, asked_at, now()), None
            for event in events.iter_sse():
                data = event.json()
                if event.event == "delta" and first is None and data.get("text", "").strip():
                    first = since_ms(started)
                elif event.event == "done":
                    done = data
                elif event.event == "error":
                    failure = json.dumps(data)
    except httpx.HTTPError as error:
        return Exchange(0, "", f"{type(error).__name__}: {error}", since_ms(started), {}, asked_at, now()), None
    status = 200 if done and not failure else 500
    return (Exchange(status, done.get("reply") or "", failure, since_ms(started), done.get("trace") or {}, asked_at,
                     now()), round(first, 1) if first is not None else None)


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def run_task(client: httpx.Client, url: str, config: Config, index: int, task: Task) -> Outcome:
    prefix = f"{config.name}-t{index:02d}"

    def send(turn: Turn) -> Exchange:
        return post_chat(client, url, turn.text, f"{prefix}-{turn.conversation}", f"{prefix}-{turn.user}")

    setup = []
    for turn in task.setup:
        exchange = send(turn)
        setup.append({"text": turn.text, "reply": exchange.reply, "http_status": exchange.status,
                      "error": exchange.error})
    exchange, first_text = stream_chat(client, url, task.ask.text, f"{prefix}-{task.ask.conversation}",
                                       f"{prefix}-{task.ask.user}")
    answer = Answer(task.ask.text, exchange.reply, exchange.asked_at, exchange.answered_at)
    trace = exchange.trace
    reflections = [str(r) for r in trace.get("reflections") or []]
    calls = [{"tool": str(c.get("tool")), "status": str(c.get("status"))} for c in trace.get("tool_calls") or []]
    return Outcome(
        config=config.name, model=config.model, planner=config.planner, category=task.category,
        request=task.ask.text, reply=exchange.reply, expected=task.check.name,
        success=exchange.status == 200 and task.check(answer), latency_ms=round(exchange.latency_ms, 1),
        first_text_ms=first_text, http_status=exchange.status, error=exchange.error,
        sentences=len(split_sentences(exchange.reply)),
        route=trace.get("route"), llm_calls=_count(trace.get("llm_calls")),
        prompt_tokens=_count(trace.get("prompt_tokens")),
        cached_prompt_tokens=_count(trace.get("cached_prompt_tokens")),
        completion_tokens=_count(trace.get("completion_tokens")), tool_calls=calls,
        history_turns=_count(trace.get("history_turns")),
        invalid_plans=sum("invalid" in r.lower() for r in reflections), plans=list(trace.get("plans") or []),
        reflections=reflections, setup=setup,
    )


def sampling(settings: JuneSettings) -> dict[str, Any]:
    """How June's agent samples its engine: the model alone samples the same way, so only the loop differs."""
    return {"max_tokens": settings.llm_max_tokens, "temperature": settings.llm_temperature,
            "top_p": settings.llm_top_p, "repetition_penalty": settings.llm_repetition_penalty,
            "seed": settings.llm_seed}


def bare_reply(client: httpx.Client, url: str, engine: str, messages: list[dict[str, str]], sampled: dict[str, Any]
               ) -> tuple[str, float | None, datetime, datetime]:
    """The bare engine's streamed reply to the messages, its time to first text, and when it was asked and done."""
    body = {"model": engine, "messages": messages, "stream": True, **sampled}
    asked_at, started, first, parts = now(), time.perf_counter(), None, []
    with connect_sse(client, "POST", f"{url}/v1/chat/completions", json=body) as events:
        if events.response.status_code != 200:
            events.response.read()
            raise RuntimeError(f"HTTP {events.response.status_code}: {events.response.text[:300]}")
        for event in events.iter_sse():
            if event.data == "[DONE]":
                continue
            for choice in event.json().get("choices", []):
                if text := (choice.get("delta") or {}).get("content"):
                    first = first if first is not None or not text.strip() else round(since_ms(started), 1)
                    parts.append(text)
    return "".join(parts).strip(), first, asked_at, now()


def run_bare_task(client: httpx.Client, url: str, engine: str, task: Task, sampled: dict[str, Any]) -> BareOutcome:
    """The model alone, shown the turns of the scored turn's own conversation (it has no memory across them)."""
    messages = [{"role": "system", "content": BARE_SYSTEM_PROMPT}]
    try:
        for turn in task.setup:
            if (turn.user, turn.conversation) == (task.ask.user, task.ask.conversation):
                messages.append({"role": "user", "content": turn.text})
                messages.append({"role": "assistant", "content": bare_reply(client, url, engine, messages, sampled)[0]})
        messages.append({"role": "user", "content": task.ask.text})
        reply, first, asked_at, answered_at = bare_reply(client, url, engine, messages, sampled)
    except (httpx.HTTPError, RuntimeError) as error:
        return BareOutcome(task.category, task.ask.text, "", False, None, f"{type(error).__name__}: {error}")
    success = task.check(Answer(task.ask.text, reply, asked_at, answered_at))
    return BareOutcome(task.category, task.ask.text, reply, success, first, None)


def engine_name(client: httpx.Client, url: str) -> str:
    """The bare engine's served name: the model that is not `june` when /v1/models lists two."""
    names = [model["id"] for model in client.get(f"{url}/v1/models").json()["data"]]
    others = [name for name in names if name != "june"]
    return others[0] if len(names) > 1 and others else "june"


def engine_speed(client: httpx.Client, url: str, name: str) -> dict[str, Any]:
    """Median completion tokens per wall second over a few raw completions of the bare engine `name`."""
    runs = []
    for _ in range(SPEED_RUNS):
        started = time.perf_counter()
        response = client.post(f"{url}/v1/chat/completions", json={"model": name, **SPEED_REQUEST})
        wall_s = time.perf_counter() - started
        ok = response.status_code == 200
        runs.append({"status": response.status_code, "wall_s": round(wall_s, 3),
                     "completion_tokens": (response.json().get("usage") or {}).get("completion_tokens") if ok else None,
                     "error": None if ok else response.text})
    rates = [run["completion_tokens"] / run["wall_s"] for run in runs if run["completion_tokens"]]
    return {"model": name, "tokens_per_s": round(statistics.median(rates), 1) if rates else None, "runs": runs}


def june_settings(config: Config, port: int, data_dir: Path) -> JuneSettings:
    return JuneSettings(port=port, data_dir=data_dir, llm_model=config.model, agent_planner=config.planner,
                        llm_seed=SEED, timezone=HOME_ZONE)


def run_config(run: ConfigRun, tasks: list[Task], port: int) -> None:
    """Deploy the graph for one configuration, send every task, measure the engine, remove the app."""
    from ray import serve

    with tempfile.TemporaryDirectory(prefix=f"june-agent-{run.config.name}-") as data_dir:
        settings = june_settings(run.config, port, Path(data_dir))
        run.settings = settings.model_dump(mode="json", exclude={"api_key"})
        print(f"[{run.config.name}] deploying ...", flush=True)
        try:
            url = deploy(settings, access_log=False)
            with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=settings.client_headers) as client:
                engine = engine_name(client, url)
                for index, task in enumerate(tasks):
                    outcome = run_task(client, url, run.config, index, task)
                    run.outcomes.append(outcome)
                    print_outcome(outcome)
                    bare = run_bare_task(client, url, engine, task, sampling(settings))
                    run.bare.append(bare)
                    print(f"[{engine} alone] {'ok  ' if bare.success else 'FAIL'} {bare.reply[:80]!r}", flush=True)
                run.engine = engine_speed(client, url, engine)
        finally:
            if APP_NAME in serve.status().applications:  # absent when the graph failed before Serve started
                serve.delete(APP_NAME)


def print_outcome(o: Outcome) -> None:
    reply = o.reply if o.http_status == 200 else f"HTTP {o.http_status}: {o.error}"
    failed_setup = [turn["http_status"] for turn in o.setup if turn["http_status"] != 200]
    note = f"  (setup turns failed: HTTP {failed_setup})" if failed_setup else ""
    print(f"[{o.config}] {'ok  ' if o.success else 'FAIL'} {o.latency_ms:6.0f} ms  "
          f"first text {o.first_text_ms or 0:6.0f} ms  {o.category:<10} "
          f"{o.request!r} -> {reply[:80]!r}{note}", flush=True)


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def _mean(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.mean(present), 1) if present else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def _success(rows: list[Outcome] | list[BareOutcome]) -> float | None:
    return _rate(sum(o.success for o in rows), len(rows))


def _cached_share(rows: list[Outcome]) -> float | None:
    """Of the prompt tokens of these requests, the share the engine served from its prefix cache."""
    prompt = sum(o.prompt_tokens or 0 for o in rows)
    return _rate(sum(o.cached_prompt_tokens or 0 for o in rows), prompt)


def by_category(run: ConfigRun) -> dict[str, dict[str, Any]]:
    """Per category: June's success, first text, model calls and prompt tokens per request; the bare model's."""
    table = {}
    for category in dict.fromkeys(o.category for o in run.outcomes):
        rows = [o for o in run.outcomes if o.category == category]
        bare = [o for o in run.bare if o.category == category]
        table[category] = {
            "tasks": len(rows), "success": _success(rows), "bare_success": _success(bare) if bare else None,
            "first_text_median_ms": _median([o.first_text_ms for o in rows]),
            "bare_first_text_median_ms": _median([o.first_text_ms for o in bare]),
            "llm_calls_per_request": _mean([o.llm_calls for o in rows]),
            "prompt_tokens_per_request": _mean([o.prompt_tokens for o in rows]),
        }
    return table


def summarise(run: ConfigRun) -> dict[str, Any]:
    rows = run.outcomes
    calls = [call for o in rows for call in o.tool_calls]
    one_sentence = [o.latency_ms for o in rows if o.http_status == 200 and o.sentences == 1]
    latency = stat([o.latency_ms for o in rows])
    short = stat(one_sentence) if one_sentence else None
    first_text = [o.first_text_ms for o in rows if o.first_text_ms is not None]
    followups = [o for o in rows if o.category.startswith(FOLLOWUP_PREFIX)]
    older = [o for o in rows if not o.category.startswith(FOLLOWUP_PREFIX)]
    categories = by_category(run)
    return {
        "tasks": len(rows),
        "success_rate": _success(rows),
        "bare_success_rate": _success(run.bare) if run.bare else None,
        "older_tasks": {"tasks": len(older), "success": _success(older),
                        "bare_success": _success([b for b in run.bare if not b.category.startswith(FOLLOWUP_PREFIX)])},
        "followup_tasks": {"tasks": len(followups), "success": _success(followups),
                           "bare_success": _success([b for b in run.bare if b.category.startswith(FOLLOWUP_PREFIX)])},
        "success_by_category": {c: row["success"] for c, row in categories.items()},
        "by_category": categories,
        "http_errors": sum(o.http_status != 200 for o in rows),
        "tool_calls": len(calls),
        "tool_call_validity": _rate(sum(call["status"] == "ok" for call in calls), len(calls)),
        "invalid_plans": sum(o.invalid_plans for o in rows),
        "median_latency_ms": latency.median_ms,
        "p95_latency_ms": latency.p95_ms,
        "one_sentence_replies": len(one_sentence),
        "one_sentence_median_latency_ms": short.median_ms if short else None,
        "one_sentence_within_target_rate": _rate(sum(ms <= ONE_SENTENCE_TARGET_MS for ms in one_sentence),
                                                 len(one_sentence)),
        "one_sentence_target_ms": ONE_SENTENCE_TARGET_MS,
        "llm_calls_per_request": _mean([o.llm_calls for o in rows]),
        "prompt_tokens_per_request": _mean([o.prompt_tokens for o in rows]),
        "cached_prompt_share": _cached_share(rows),
        "cached_prompt_share_with_history": _cached_share([o for o in rows if o.history_turns]),
        "completion_tokens_per_request": _mean([o.completion_tokens for o in rows]),
        "engine_model": run.engine["model"] if run.engine else None,
        "engine_tokens_per_s": run.engine["tokens_per_s"] if run.engine else None,
        "first_text_median_ms": _median(first_text),
        "first_text_p95_ms": stat(first_text).p95_ms if first_text else None,
        "bare_first_text_median_ms": _median([b.first_text_ms for b in run.bare]),
    }


def report_name(models: list[str]) -> str:
    """`agent` for the default models; `agent_<model>_…` for others, so that a run of one does not overwrite them."""
    return "agent" if models == DEFAULT_MODELS else "_".join(["agent", *models])


def write_report(runs: list[ConfigRun], tasks: list[Task], machine: dict[str, Any], output: Path, name: str) -> None:
    summaries = {run.config.name: summarise(run) for run in runs if run.outcomes}
    report = {
        "benchmark": "agent",
        "written_at": now().isoformat(timespec="seconds"),
        "home_zone": HOME_ZONE,
        "machine": machine,
        "tasks_per_category": dict(Counter(task.category for task in tasks)),
        "tasks_per_config": {run.config.name: len(run.outcomes) for run in runs},
        "configs": [{"name": run.config.name, "model": run.config.model, "planner": run.config.planner,
                     "error": run.error, "settings": run.settings, "engine": run.engine,
                     "summary": summaries.get(run.config.name)} for run in runs],
        "outcomes": [asdict(o) for run in runs for o in run.outcomes],
        "bare_outcomes": {run.config.name: [asdict(o) for o in run.bare] for run in runs},
    }
    (output / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    if summaries:
        plot(summaries, output / f"{name}.png")


def plot(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [(name, "success", name) for name in summaries] + [
        (name, "bare_success", f"{summaries[name]['engine_model']} alone") for name in summaries]
    categories = list(dict.fromkeys(c for s in summaries.values() for c in s["by_category"]))
    figure, (bars_axis, scatter_axis) = plt.subplots(1, 2, figsize=(18, 5.5), width_ratios=(2.8, 1))
    width = 0.8 / len(columns)
    for index, (name, key, label) in enumerate(columns):
        values = [100 * (summaries[name]["by_category"].get(c, {}).get(key) or 0) for c in categories]
        bars = bars_axis.bar([i + index * width for i in range(len(categories))], values, width, label=label)
        bars_axis.bar_label(bars, fmt="%.0f", fontsize=6)
    bars_axis.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(categories))],
                         [c.replace(FOLLOWUP_PREFIX, "follow-up\n").replace("earlier-", "earlier\n") for c in categories],
                         fontsize=7)
    bars_axis.set_ylabel("task success (%)")
    bars_axis.set_ylim(0, 110)
    bars_axis.legend(fontsize=8)
    bars_axis.set_title("success by category")
    for name, summary in summaries.items():
        x, y = summary["median_latency_ms"] / 1000, 100 * summary["success_rate"]
        scatter_axis.scatter(x, y, s=50)
        scatter_axis.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    scatter_axis.set_xlabel("median latency (s)")
    scatter_axis.set_ylabel("task success (%)")
    scatter_axis.set_ylim(0, 105)
    scatter_axis.set_xlim(0, 1.3 * max(s["median_latency_ms"] for s in summaries.values()) / 1000 + 0.1)
    scatter_axis.grid(alpha=0.3)
    scatter_axis.set_title("quality × latency")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _cell(value: float | None, scale: float = 1.0, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{suffix}"


def print_summary(runs: list[ConfigRun]) -> None:
    header = (f"{'config':<24}{'success':>8}{'alone':>7}{'first':>7}{'tools ok':>9}{'invalid':>8}{'median':>8}"
              f"{'p95':>8}{'LLM/req':>8}{'prompt':>8}{'compl.':>8}{'tok/s':>7}")
    print(header)
    for run in runs:
        if not run.outcomes:
            last_line = (run.error or "no outcomes").strip().splitlines()[-1]
            print(f"{run.config.name:<24}failed: {last_line}")
            continue
        s = summarise(run)
        print(f"{run.config.name:<24}{_cell(s['success_rate'], 100, 0, '%'):>8}"
              f"{_cell(s['bare_success_rate'], 100, 0, '%'):>7}{_cell(s['first_text_median_ms']):>7}"
              f"{_cell(s['tool_call_validity'], 100, 0, '%'):>9}{s['invalid_plans']:>8}"
              f"{_cell(s['median_latency_ms']):>8}{_cell(s['p95_latency_ms']):>8}"
              f"{_cell(s['llm_calls_per_request'], digits=2):>8}{_cell(s['prompt_tokens_per_request']):>8}"
              f"{_cell(s['completion_tokens_per_request']):>8}{_cell(s['engine_tokens_per_s'], digits=1):>7}")
        print(f"\n{'category':<30}{'tasks':>6}{'June':>7}{'alone':>7}{'first ms':>10}{'LLM/req':>9}{'prompt':>8}")
        for category, row in s["by_category"].items():
            print(f"{category:<30}{row['tasks']:>6}{_cell(row['success'], 100, 0, '%'):>7}"
                  f"{_cell(row['bare_success'], 100, 0, '%'):>7}{_cell(row['first_text_median_ms']):>10}"
                  f"{_cell(row['llm_calls_per_request'], digits=2):>9}{_cell(row['prompt_tokens_per_request']):>8}")
        print(f"prompt tokens from the engine's cache: {_cell(s['cached_prompt_share'], 100, 0, '%')} of all, "
              f"{_cell(s['cached_prompt_share_with_history'], 100, 0, '%')} on turns with history")
        for part in ("older_tasks", "followup_tasks"):
            row = s[part]
            print(f"{part.replace('_', ' '):<30}{row['tasks']:>6}{_cell(row['success'], 100, 0, '%'):>7}"
                  f"{_cell(row['bare_success'], 100, 0, '%'):>7}")


def select(categories: list[str], limit: int | None) -> list[Task]:
    taken: Counter[str] = Counter()
    chosen = []
    for task in ALL_TASKS:
        if task.category in categories and (limit is None or taken[task.category] < limit):
            chosen.append(task)
            taken[task.category] += 1
    return chosen


def machine_facts() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count() or 0, "cpu_model": cpu_model(), "platform": platform.platform(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--planners", nargs="+", choices=DEFAULT_PLANNERS, default=DEFAULT_PLANNERS)
    parser.add_argument("--categories", nargs="+", choices=CATEGORIES, default=CATEGORIES)
    parser.add_argument("--limit-per-category", type=int, default=None, metavar="N")
    parser.add_argument("--sample", nargs="+", default=[], metavar="MODEL=N",
                        help="fewer tasks per category for a slow model, e.g. qwen2.5-1.5b=2 (the first N of each)")
    parser.add_argument("--output", type=Path, default=None, help="default benchmarks/results (--quick: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="1 task per category, first model and planner only")
    args = parser.parse_args()
    if args.quick:
        args.models, args.planners, args.limit_per_category = args.models[:1], args.planners[:1], 1
        args.output = args.output or Path(tempfile.mkdtemp(prefix="june-agent-bench-"))
    args.output = args.output or Path("benchmarks/results")
    return args


def main() -> None:
    args = parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    samples = {model: int(n) for model, _, n in (entry.partition("=") for entry in args.sample)}
    tasks = select(args.categories, args.limit_per_category)
    runs = [ConfigRun(Config(model, planner)) for model in args.models for planner in args.planners]
    tasks_for = {run.config.name: select(args.categories, samples.get(run.config.model, args.limit_per_category))
                 for run in runs}
    machine = machine_facts()
    print(f"{len(tasks)} tasks × {len(runs)} configurations; results in {args.output}", flush=True)
    start_ray()
    port = free_port()
    try:
        for index, run in enumerate(runs):
            try:
                run_config(run, tasks_for[run.config.name], port)
            except Exception:  # one configuration that fails to deploy or dies must not lose the others
                run.error = traceback.format_exc()
                print(f"[{run.config.name}] failed:\n{run.error}", flush=True)
            write_report(runs[: index + 1], tasks, machine, args.output, report_name(args.models))
    finally:
        stop()
    print()
    print_summary(runs)
    name = report_name(args.models)
    print(f"\nwrote {args.output / f'{name}.json'} and {args.output / f'{name}.png'}")


if __name__ == "__main__":
    main()
