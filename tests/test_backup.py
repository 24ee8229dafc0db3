"""`june backup` and `june restore`: a consistent copy while writers go on, checked before anything is replaced,
refused while June holds the stores; bad input changes nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from agent.stores import Stores
from common.store_files import ALL_FILES, CONVERSATIONS
from graphs.backup import MANIFEST, BackupError, backup, restore
from graphs.cli import main as june
from messaging.ledger import Ledger, MessageFilter


def stores_in(data_dir: Path) -> Stores:
    return Stores.open(data_dir / "conversations.sqlite3", data_dir / "notes.sqlite3",
                       data_dir / "messages.sqlite3")


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "june"
    with closing(stores_in(folder)) as stores:
        stores.history.append("owner", "kitchen", "What is 2 + 2?", "4.")
        stores.notes.remember("owner", "The spare key is under the blue pot.")
    with closing(Ledger(folder / "messages.sqlite3")) as ledger:
        ledger.send(platform="telegram", user_id="telegram:42", chat_id="42", text="Your parcel has arrived.",
                    speak=False, origin="owner")
    return folder


def test_a_backup_taken_while_turns_are_written_holds_every_turn_acknowledged_before_it(tmp_path: Path,
                                                                                         data_dir: Path) -> None:
    history = stores_in(data_dir).history
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        number = 0
        while not stop.is_set():
            history.append("owner", "busy", f"question {number}", f"answer {number}")
            acknowledged.append(number)
            number += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 200:
        time.sleep(0.01)
    before = list(acknowledged)
    manifest = backup(data_dir, tmp_path / "backup")
    stop.set()
    thread.join()

    folder = tmp_path / "backup"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in folder.iterdir())
    assert {saved.name for saved in manifest.files} == {"conversations.sqlite3", "notes.sqlite3", "messages.sqlite3"}
    restored = tmp_path / "restored"
    restore(folder, restored)
    said = {turn.content for turn in stores_in(restored).history.turns("owner", "busy", limit=100_000)}
    assert {f"question {number}" for number in before} <= said
    turns = stores_in(restored).history.turns("owner", "busy", limit=100_000)
    assert len(turns) % 2 == 0  # a turn is its question and its answer, never half of one


def test_restore_moves_the_stores_that_were_there_aside(tmp_path: Path, data_dir: Path) -> None:
    backup(data_dir, tmp_path / "backup")
    later = sqlite3.connect(data_dir / "conversations.sqlite3")
    later.execute("INSERT INTO turns (user_id, conversation_id, role, content, created_at) VALUES"
                  " ('owner', 'kitchen', 'user', 'Said after the backup', 0)")
    later.commit()
    later.close()
    aside = restore(tmp_path / "backup", data_dir)
    with closing(stores_in(data_dir)) as stores:
        assert [t.content for t in stores.history.turns("owner", "kitchen")] == ["What is 2 + 2?", "4."]
    kept = sqlite3.connect(aside / "conversations.sqlite3")
    assert ("Said after the backup",) in kept.execute("SELECT content FROM turns").fetchall()


def test_restore_refuses_while_a_process_holds_the_stores(tmp_path: Path, data_dir: Path) -> None:
    backup(data_dir, tmp_path / "backup")
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1]);"
                               " db.execute('SELECT 1 FROM turns'); print('open', flush=True); time.sleep(60)",
                               str(data_dir / "conversations.sqlite3")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        before = listing(data_dir)
        with pytest.raises(BackupError, match=rf"running on .*\[{holder.pid}\].*stop them first"):
            restore(tmp_path / "backup", data_dir)
        assert listing(data_dir) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_backup_goes_only_into_a_new_or_empty_folder(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(BackupError, match="not an empty folder"):
        backup(data_dir, tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["photo.jpg"]
    with pytest.raises(BackupError, match="holds no June store"):
        backup(tmp_path / "nothing-here", tmp_path / "empty")


@pytest.mark.parametrize("damage", ["no manifest", "garbled manifest", "missing file", "changed file",
                                    "not sqlite", "newer version", "foreign file"])
def test_a_bad_backup_is_refused_and_changes_nothing(tmp_path: Path, data_dir: Path, damage: str) -> None:
    folder = tmp_path / "backup"
    backup(data_dir, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    notes = folder / "notes.sqlite3"
    if damage == "no manifest":
        (folder / MANIFEST).unlink()
    elif damage == "garbled manifest":
        (folder / MANIFEST).write_text('{"format": 1, "files": [')
    elif damage == "missing file":
        notes.unlink()
    elif damage == "changed file":
        notes.write_bytes(notes.read_bytes() + b"\0")
    elif damage in ("not sqlite", "newer version"):
        if damage == "not sqlite":
            notes.write_bytes(b"not a database " * 300)
        else:
            db = sqlite3.connect(notes)
            db.execute(f"PRAGMA user_version = {ALL_FILES['notes.sqlite3'].version + 1}")
            db.commit()
            db.close()
        from graphs.backup import sha256

        for saved in manifest["files"]:
            if saved["name"] == "notes.sqlite3":
                saved["sha256"] = sha256(notes)
        (folder / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "foreign file":
        manifest["files"].append({**manifest["files"][0], "name": "../../etc/passwd"})
        (folder / MANIFEST).write_text(json.dumps(manifest))
    before = listing(data_dir)
    with pytest.raises(BackupError):
        restore(folder, data_dir)
    assert listing(data_dir) == before


def test_the_cli_backs_up_and_restores_and_says_what_went_wrong(tmp_path: Path, data_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("JUNE_DATA_DIR", str(data_dir))
    assert june(["backup", str(tmp_path / "saved")]) == 0
    assert f"conversations.sqlite3 (v{CONVERSATIONS.version})" in capsys.readouterr().out
    assert june(["backup", str(tmp_path / "saved")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert june(["restore", str(tmp_path / "nowhere")]) == 1
    assert "not a June backup" in capsys.readouterr().err
    assert june(["restore", str(tmp_path / "saved")]) == 0
    assert "restored" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        june(["backup", "--help"])
    assert exit_.value.code == 0


def test_a_backup_under_load_restores_into_a_fresh_data_dir_with_all_that_was_acknowledged(graph, tmp_path) -> None:
    """Chats, notes, reminders and ledger messages stream into the running graph while the backup is taken;
    the restored data dir holds each one acknowledged before the backup began, and each reminder fires once."""
    user = "backup-load"
    acknowledged: list[tuple[float, str, str]] = []  # (when, kind, what)
    stop = threading.Event()

    def stream(kind: str) -> None:
        with graph.client() as http:
            number = 0
            while not stop.is_set():
                number += 1
                if kind == "ledger":
                    response = http.post("/v1/messages", json={"platform": "telegram", "user_id": "telegram:4242",
                                                               "chat_id": "4242", "text": f"parcel {number}"})
                    what = f"parcel {number}"
                else:
                    text = {"note": f"Remember that locker {number} is mine.",
                            "reminder": f"Remind me in 30 minutes to water plant {number}.",
                            "chat": f"What is {number} plus {number}?"}[kind]
                    response = http.post("/v1/chat", json={"text": text, "user_id": user, "conversation_id": kind})
                    what = text
                response.raise_for_status()
                acknowledged.append((time.time(), kind, what))

    kinds = ("chat", "note", "reminder", "ledger")
    threads = [threading.Thread(target=stream, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while {kind for _, kind, _ in acknowledged} != set(kinds) or len(acknowledged) < 12:
            assert time.monotonic() < deadline, f"the graph acknowledged only {acknowledged}"
            time.sleep(0.2)
        began = time.time()
        backup(graph.settings.data_dir, tmp_path / "backup")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    before = [(kind, what) for when, kind, what in acknowledged if when < began]

    fresh = tmp_path / "fresh"
    restore(tmp_path / "backup", fresh)
    stores = stores_in(fresh)
    said = {turn.content for kind in ("chat", "note", "reminder")
            for turn in stores.history.turns(user, kind, limit=10_000)}
    notes = " ".join(note.text for note in stores.notes.recall(user, limit=10_000))
    reminders = {reminder.text for reminder in stores.reminders.upcoming(user)}
    ledger = Ledger(fresh / "messages.sqlite3", clock=lambda: time.time() + 3600)
    sent = {m.text for m in ledger.messages(MessageFilter(user_id="telegram:4242", limit=200))}
    for kind, what in before:
        if kind == "chat":
            assert what in said
        elif kind == "note":
            assert what in said and f"locker {what.split()[3]}" in notes
        elif kind == "reminder":
            assert what in said and f"water plant {what.split()[-1].rstrip('.')}" in reminders
        else:
            assert what in sent
    fired = ledger.fire_due()
    assert len(fired) == len(reminders) >= sum(kind == "reminder" for kind, _ in before)
    assert ledger.fire_due() == []
