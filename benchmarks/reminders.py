"""How close to their time reminders arrive, and how often a bot edits a message, through the whole path.

A real graph, the Telegram bot (python-telegram-bot) against the fake Bot API server of the tests (the
only way to see when a message reaches "Telegram" here). Reminders are set the way users ask for them
("Remind me in 40 seconds to …", through /v1/chat and the agent), their due times read back from the
user's export, and the figure is when the fake received each reminder's text (and its voice note) minus
the due time. Progress edits: slow questions with a 0.3 s progress threshold; edits per answer and the
gaps between edits of one message. JSON and a plot under `benchmarks/results/`.

    python -m benchmarks.reminders                 # starts its own graph, 20 reminders
    python -m benchmarks.reminders --quick         # 3 reminders, nothing written
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from common.settings import JuneSettings
from graphs.launch import deploy, free_port, start_ray, stop

RESULTS = Path(__file__).parent / "results"
USER = 4242
QUESTIONS = ("Tell me a short fact about the Moon.", "Describe a sunny day in one sentence.",
             "Name three colours of the rainbow.")


def run(count: int, lead_s: float) -> dict:
    from tests.fakes.fake_telegram import FakeTelegram
    from tests.fakes.server import wait_until
    from tests.test_telegram_bot import bot_settings, running_bot

    settings = JuneSettings(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="june-reminders-")))
    start_ray()
    fake = FakeTelegram().start()
    try:
        url = deploy(settings, access_log=False)
        bot = bot_settings(fake, url, Path(tempfile.mkdtemp(prefix="june-bot-")), telegram_owners=str(USER),
                           progress_after_s=0.3, api_key=settings.client_key)
        with running_bot(bot), httpx.Client(base_url=url, headers=settings.client_headers, timeout=120) as http:
            for n in range(count):
                reply = http.post("/v1/chat", json={"text": f"Remind me in {int(lead_s)} seconds to do task {n}",
                                                    "user_id": f"telegram:{USER}", "chat_id": str(USER),
                                                    "conversation_id": f"bench-{uuid.uuid4().hex[:8]}"}).json()
                print(f"set {n + 1}/{count}: {reply['reply'][:80]}", flush=True)
            due = {r["text"]: r["due_at"] for r in http.get(f"/v1/users/telegram:{USER}/export").json()["reminders"]}
            wait_until(lambda: sum(1 for s in fake.sent_to(USER) if s.method == "sendVoice") >= count,
                       lead_s + 60 + 5 * count, "every reminder's voice note")
            time.sleep(3)
            texts = {s.text.removeprefix("⏰ Reminder: "): s.at for s in fake.sent_to(USER)
                     if s.method == "sendMessage"}
            voices = sorted(s.at for s in fake.sent_to(USER) if s.method == "sendVoice")
            copies = [s.text for s in fake.sent_to(USER) if s.method == "sendMessage"]
            text_error = [texts[what] - at for what, at in due.items()]
            voice_error = [v - at for v, at in zip(voices, sorted(due.values()))]
            fake.edits.clear()
            for question in QUESTIONS:
                fake.wait_for_text_reply(fake.send_text(USER, question), timeout=120)
                time.sleep(0.5)
            edited = [e for e in fake.edits]
            per_message: dict[int, list[float]] = {}
            for at, _, message_id, _ in edited:
                per_message.setdefault(message_id, []).append(at)
            gaps = [b - a for times in per_message.values() for a, b in zip(times, times[1:])]
            restart = _through_a_restart(http, settings, fake, wait_until)
    finally:
        fake.stop()
        stop()
    return {"reminders": count, "lead_s": lead_s, "delivered_texts": len(copies), "duplicates": len(copies) - count,
            "text_error_s": {"median": statistics.median(text_error), "max": max(text_error),
                             "min": min(text_error), "all": text_error},
            "voice_error_s": {"median": statistics.median(voice_error), "max": max(voice_error)},
            "progress_edits": {"answers": len(QUESTIONS), "edits": len(edited),
                               "edits_per_answer": len(edited) / len(QUESTIONS),
                               "min_gap_between_edits_of_one_message_s": min(gaps) if gaps else None},
            "graph_restart": restart}


def _through_a_restart(http: httpx.Client, settings: JuneSettings, fake, wait_until) -> dict:
    """A reminder due while the whole graph is down (Serve and Ray stopped) fires once at the restart, late."""
    http.post("/v1/chat", json={"text": "Remind me in 20 seconds to check the restart", "chat_id": str(USER),
                                "user_id": f"telegram:{USER}", "conversation_id": "bench-restart"})
    stopped = time.time()
    stop()
    time.sleep(25)
    start_ray()
    deploy(settings, access_log=False)
    back = time.time()
    [late] = wait_until(lambda: [s for s in fake.sent_to(USER) if "check the restart" in (s.text or "")], 120,
                        "the late reminder")
    time.sleep(5)
    copies = [s for s in fake.sent_to(USER) if "check the restart" in (s.text or "")]
    return {"down_s": round(back - stopped, 1), "after_restart_s": round(late.at - back, 2), "copies": len(copies),
            "text": late.text}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.bar(range(1, result["reminders"] + 1), result["text_error_s"]["all"])
    axis.axhline(result["text_error_s"]["median"], color="black", linestyle="--", label="median")
    axis.set_xlabel("reminder (set in turn, all due ~40 s after being set)")
    axis.set_ylabel("text arrived after due (s)")
    axis.set_title("Reminder timing error: due time → the fake Telegram receives the text")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--lead", type=float, default=40.0, help="seconds ahead each reminder is set")
    parser.add_argument("--quick", action="store_true", help="3 reminders, nothing written")
    args = parser.parse_args(argv)
    result = run(3 if args.quick else args.count, args.lead)
    print(json.dumps({k: v for k, v in result.items()}, indent=2))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "reminders.json").write_text(json.dumps(result, indent=2))
        plot(result, RESULTS / "reminders.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
