"""`june inbox list|show|reply`: the owner's inbox through the graph's API (JUNE_API_URL, an admin JUNE_API_KEY)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import httpx

from bots.settings import BotSettings
from common.cli_settings import INVALID_SETTINGS, load_settings

STATUSES = ("NEW", "PROCESSING", "RESPONDED", "ERROR")


def _when(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time).strftime("%Y-%m-%d %H:%M")


def _line(item: dict) -> str:
    message = item["message"]
    return f"#{item['id']:<5} {item['status']:<10} {_when(item['created_at'])}  {message['user_id']:<22} " \
           f"{(message['text'] or '(voice)')[:60]}"


def _details(item: dict) -> str:
    message, answer = item["message"], item["answer"]
    lines = [f"inbox item #{item['id']}: {item['status']}",
             f"from:    {message['user_id']} in chat {message['chat_id']} ({message['platform']})",
             f"at:      {_when(message['created_at'])}", f"message: {message['text']}"]
    if answer:
        lines.append(f"answer:  {answer['text']} ({answer['status']})")
    if item["detail"]:
        lines.append(f"problem: {item['detail']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="june inbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the newest items")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=20)
    commands.add_parser("show", help="one item, with its answer").add_argument("id", type=int)
    reply = commands.add_parser("reply", help="answer the user (once)")
    reply.add_argument("id", type=int)
    reply.add_argument("text", nargs="+")
    args = parser.parse_args(argv)
    if (settings := load_settings(BotSettings, "june inbox")) is None:
        return INVALID_SETTINGS
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
    with httpx.Client(base_url=settings.api_url, headers=headers, timeout=30) as http:
        try:
            if args.command == "list":
                params = {"limit": args.limit, **({"status": args.status} if args.status else {})}
                response = http.get("/v1/inbox", params=params)
            elif args.command == "show":
                response = http.get(f"/v1/inbox/{args.id}")
            else:
                response = http.post(f"/v1/inbox/{args.id}/reply", json={"text": " ".join(args.text)})
        except httpx.HTTPError as error:
            print(f"june inbox: cannot reach June at {settings.api_url} ({type(error).__name__})", file=sys.stderr)
            return 1
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code >= 400:
        error = body.get("error") or {}
        print(f"june inbox: {error.get('message') or response.reason_phrase} ({error.get('code', 'http_error')})",
              file=sys.stderr)
        return 1
    if args.command == "list":
        print("\n".join(_line(item) for item in body["items"]) or "The inbox is empty.")
    else:
        print(_details(body) if args.command == "show" else f"Queued for {body['message']['user_id']}: "
              f"#{body['id']} is {body['status']}.")
    return 0
