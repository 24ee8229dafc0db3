"""The bots' message history and `june history` (bots.history_cli), without a platform or a graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots import telegram_html
from bots.history import MessageHistory
from bots.history_cli import main
from bots.settings import BotSettings


def test_history_lists_and_analyzes_rendering_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JUNE_DATA_DIR", str(tmp_path))
    history = MessageHistory(BotSettings(_env_file=None).history_db)
    inbound = history.receive("telegram", "text", "42", "7", "100", "Tell me everything")
    assert history.receive("telegram", "text", "42", "7", "100", "Tell me everything") is None  # redelivered
    long_answer = "A sentence that goes on. " * 400
    for outbound in history.queue(inbound, long_answer, telegram_html.render(long_answer), None, None):
        history.sent(outbound, "5", parse_mode=outbound.parse_mode)
    history.finish(inbound, "answered")
    broken = history.receive("telegram", "text", "42", "7", "101", "Break it")
    [outbound] = history.queue(broken, "<b>x", telegram_html.render("<b>x"), None, None)
    history.failed(outbound, "BadRequest")
    history.ignore("telegram", "text", "43", "8", "102")
    history.close()

    assert main(["--platform", "telegram", "--user", "7", "--limit", "20"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 6 and "1/3 [HTML] sent" in listing[1] and "[plain] failed" in listing[-1]

    assert main(["--analyze"]) == 0
    report = capsys.readouterr().out
    assert "answer split into 3 messages" in report
    assert "markup refused, sent as plain text (unclosed <b>" in report and "not delivered (failed)" in report


def test_forgetting_a_user_leaves_nothing_of_theirs_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "bot_messages.sqlite3"
    history = MessageHistory(path)
    for n in range(20):
        history.receive("telegram", "text", "42", "8", str(n), f"someone else's message {n}")
    mine = history.receive("telegram", "text", "42", "7", "100", "my secret is marmalade-heron")
    history.queue(mine, "noted, marmalade-heron", telegram_html.render("noted, marmalade-heron"), None, None)
    assert history.forget_user("telegram", "7") == 2
    history.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("bot_messages"))
    assert b"marmalade-heron" not in data and b"someone else's message 19" in data
