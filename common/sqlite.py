"""SQLite as every June store opens it: a private folder, WAL, and the file's schema version brought forward.

Each file carries one schema version (`PRAGMA user_version`); its `Schema` lists the forward migrations in
order, so version N means the first N have run. Opening a file runs the missing ones, each in one
transaction that sets the version as it commits, after a backup of the file as it was. A file written by
a newer June is refused and left untouched.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("june.sqlite")

Migration = str | Callable[[sqlite3.Connection], None]  # an SQL script, or a function for what SQL cannot say
MAX_QUERY_WORDS = 8
BACKUPS_FOLDER = "backups"


class SchemaTooNew(RuntimeError):
    """The file was written by a newer June; an older one must not guess at its shape."""


class MigrationFailed(RuntimeError):
    """A migration failed; its transaction was rolled back, so the file is as it was before it."""


@dataclass(frozen=True)
class Schema:
    """One SQLite file's shape: `migrations[i]` brings version i to i + 1."""

    name: str
    migrations: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


def open_store(path: Path, schema: Schema) -> sqlite3.Connection:
    """A connection usable from several threads (callers hold a lock), the file at `schema.version`."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        version = schema_version(db)
        if version > schema.version:
            raise SchemaTooNew(f"{path} is at schema version {version}, and this June reads {schema.name} files up "
                               f"to version {schema.version}: it was written by a newer June. Run that version, or "
                               f"restore a backup taken before the upgrade (june restore).")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
        if version < schema.version:
            migrate(db, path, schema, version)
    except BaseException:
        db.close()
        raise
    return db


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite3.Connection, path: Path, schema: Schema, version: int) -> None:
    if has_tables(db):
        saved = backup_before_migrating(db, path, version)
        log.info("migrating %s from version %d to %d; the file as it was is in %s", path.name, version,
                 schema.version, saved)
    for target in range(version + 1, schema.version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(db) < target:  # another process may have run it while this one waited
                run(db, schema.migrations[target - 1])
                db.execute(f"PRAGMA user_version = {target}")
        except Exception as error:
            db.execute("ROLLBACK")
            raise MigrationFailed(f"{path}: migrating {schema.name} to version {target} failed ({error}); the file "
                                  f"is left at version {target - 1}") from error
        db.execute("COMMIT")


def run(db: sqlite3.Connection, migration: Migration) -> None:
    if callable(migration):
        migration(db)
        return
    for statement in statements(migration):
        db.execute(statement)


def statements(script: str) -> Iterator[str]:
    """The script's statements one by one (a trigger's body kept whole): `executescript` would commit first."""
    pending = ""
    for piece in script.split(";")[:-1]:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if (pending + script.rsplit(";", 1)[-1]).strip():
        raise ValueError(f"an incomplete SQL statement: {(pending + script.rsplit(';', 1)[-1]).strip()[:80]!r}")


def has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def backup_before_migrating(db: sqlite3.Connection, path: Path, version: int) -> Path:
    folder = path.parent / BACKUPS_FOLDER
    target = folder / f"{path.stem}-v{version}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}{path.suffix}"
    copy(db, target)
    return target


def copy(db: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of the live database (SQLite's online backup), private to June's user."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    copied = sqlite3.connect(target)
    try:
        db.backup(copied)
    finally:
        copied.close()


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All of the block's writes or none. (`with db:` is not one on a connection in autocommit mode, as June's
    are: each statement would commit on its own.)"""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def copy_file(source: Path, target: Path) -> None:
    """`copy` of the database at `source`, which may be live (June serving) or closed."""
    db = sqlite3.connect(source, timeout=30)
    try:
        copy(db, target)
    finally:
        db.close()


def inspect(path: Path) -> tuple[list[str], int]:
    """The file's integrity-check problems (`["ok"]` when none) and its schema version, read without writing."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("PRAGMA integrity_check")], schema_version(db)
    finally:
        db.close()


def purge_wal(db: sqlite3.Connection) -> None:
    """Write the log back and empty it, so deleted rows' old pages leave the -wal file too."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def contains_words(column: str, query: str) -> tuple[str, list[str]]:
    """An SQL condition (starting with AND) that `column` contains every word of `query`, case-insensitively."""
    words = query.lower().split()[:MAX_QUERY_WORDS]
    return "".join(f" AND instr(lower({column}), ?) > 0" for _ in words), words
