"""JSON-lines logging for the bot processes; `extra=` fields become keys. Callers never pass secrets or texts."""

from __future__ import annotations

import json
import logging

STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        entry.update({key: value for key, value in vars(record).items() if key not in STANDARD_FIELDS})
        if record.exc_info:
            entry["error"] = f"{record.exc_info[0].__name__}" if record.exc_info[0] else ""
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL, and Telegram's URLs contain the bot token.
    for noisy in ("httpx", "httpcore", "telegram.ext.Updater", "discord.http", "discord.gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
