"""`june history`: read the bots' message history; `--analyze` lists rendering and delivery problems."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import datetime

from bots.history import MessageHistory
from bots.settings import BotSettings
from common.cli_settings import INVALID_SETTINGS, load_settings

PREVIEW_CHARS = 60


def _preview(text: str | None) -> str:
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _line(row: sqlite3.Row) -> str:
    when = datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    arrow = "→" if row["direction"] == "in" else "←"
    split = f" {row['split_index'] + 1}/{row['split_count']}" if row["split_count"] else ""
    mode = f" [{row['parse_mode'] or 'plain'}]" if row["direction"] == "out" and row["kind"] == "text" else ""
    text = row["rendered_text"] if row["direction"] == "out" else row["raw_text"]
    return (f"{when} #{row['id']} {row['platform']} {arrow} chat {row['chat_id']} user {row['user_id']} "
            f"{row['kind']}{split}{mode} {row['status']}: {_preview(text)}")


def problems(row: sqlite3.Row) -> list[str]:
    """What went wrong answering one inbound row, or rendering or delivering one outbound row."""
    found = []
    detail = row["detail"] or ""
    if row["direction"] != "out":
        if row["status"] == "failed":
            found.append(f"not answered (failed: {detail or 'no detail'})")
        return found
    if detail.startswith("fallback:"):
        reasons = detail.removeprefix("fallback: ").split("; no voice:")[0]
        found.append(f"markup refused, sent as plain text ({reasons})")
    if "platform rejected markup" in detail:
        found.append("the platform failed to parse the markup")
    if "no voice: " in detail:
        found.append(f"spoken answer missing, June could not synthesise it ({detail.split('no voice: ')[1]})")
    if row["kind"] == "voice" and detail.startswith("voice refused"):
        found.append(f"voice note refused by the platform: {detail}")
    if row["status"] in ("failed", "queued"):
        reason = f": {detail}" if detail and row["kind"] != "voice" else ""
        found.append(f"not delivered ({row['status']}){reason}")
    if row["split_count"] and row["split_count"] > 1 and row["split_index"] == 0:
        found.append(f"answer split into {row['split_count']} messages")
    rendered = row["rendered_text"] or ""
    if rendered.endswith(("…", "...")) and not (row["raw_text"] or "").rstrip().endswith(("…", "...")):
        found.append("looks truncated")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="june history", description=__doc__)
    parser.add_argument("--platform", choices=["telegram", "discord"])
    parser.add_argument("--user", help="the platform's user ID")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--analyze", action="store_true", help="list rendering and delivery problems only")
    args = parser.parse_args(argv)
    if (settings := load_settings(BotSettings, "june history")) is None:
        return INVALID_SETTINGS
    if not settings.history_db.exists():
        print(f"june history: no history yet at {settings.history_db}", file=sys.stderr)
        return 1
    history = MessageHistory(settings.history_db)
    try:
        rows = history.query(args.platform, args.user, args.limit)
    finally:
        history.close()
    for row in rows:
        if not args.analyze:
            print(_line(row))
            continue
        for problem in problems(row):
            answering = (f"reply to #{row['reply_to']}" if row["direction"] == "out"
                         else f"{row['kind']} from user {row['user_id']}")
            print(f"#{row['id']} {row['platform']} chat {row['chat_id']} ({answering}): {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
