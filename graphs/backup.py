"""`june backup DIR` and `june restore DIR`: every store copied consistently while June serves, and put back
while it does not.

A backup is a folder (0700) of SQLite files (0600), each taken with SQLite's online backup API (one read
transaction, so writers go on and the copy is a single moment), and `backup.json`: each file's schema
version, size and sha256. The owner key is not in it: a restored June makes a new one unless you keep yours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from common.cli_settings import INVALID_SETTINGS, load_settings
from common.settings import JuneSettings
from common.sqlite import BACKUPS_FOLDER, copy_file, inspect
from common.store_files import ALL_FILES

MANIFEST = "backup.json"
FORMAT = 1


class BackupError(Exception):
    """Nothing was changed; the message says why."""


@dataclass(frozen=True)
class SavedFile:
    name: str
    version: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    format: int
    taken_at: float
    data_dir: str
    files: list[SavedFile]

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            raw = json.loads((folder / MANIFEST).read_text())
            manifest = cls(raw["format"], raw["taken_at"], raw["data_dir"], [SavedFile(**f) for f in raw["files"]])
        except FileNotFoundError:
            raise BackupError(f"{folder} is not a June backup: it has no {MANIFEST}") from None
        except (ValueError, KeyError, TypeError) as error:
            raise BackupError(f"{folder / MANIFEST} is damaged ({error})") from None
        if manifest.format != FORMAT:
            raise BackupError(f"{folder} is a backup of format {manifest.format}; this June reads format {FORMAT}")
        return manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup(data_dir: Path, target: Path) -> Manifest:
    """Copy every store in `data_dir` into `target` (new or empty), while June may be running."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} is not an empty folder: a backup goes into a new or empty one")
    stores = [(name, data_dir / name) for name in ALL_FILES if (data_dir / name).is_file()]
    if not stores:
        raise BackupError(f"{data_dir} holds no June store: nothing to back up (is JUNE_DATA_DIR right?)")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)
    saved = []
    for name, path in stores:
        copy_file(path, target / name)
        saved.append(SavedFile(name, _checked_version(target / name), (target / name).stat().st_size,
                               sha256(target / name)))
    manifest = Manifest(FORMAT, time.time(), str(data_dir), saved)
    (target / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1) + "\n")
    (target / MANIFEST).chmod(0o600)
    return manifest


def restore(source: Path, data_dir: Path) -> Path:
    """Put the backup in `source` into `data_dir`; what was there is moved aside, into the folder returned."""
    manifest = Manifest.read(source)
    for saved in manifest.files:
        _check(source, saved)
    if holders := _processes_holding(data_dir):
        raise BackupError(f"June or its bots are running on {data_dir} ({', '.join(holders)}): stop them first")
    aside = data_dir / BACKUPS_FOLDER / f"before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
    aside.mkdir(mode=0o700, parents=True)
    data_dir.chmod(0o700)
    for name in ALL_FILES:
        for path in (data_dir / name, data_dir / f"{name}-wal", data_dir / f"{name}-shm"):
            if path.exists():
                path.rename(aside / path.name)
    for saved in manifest.files:
        incoming = data_dir / f".{saved.name}.restoring"
        shutil.copyfile(source / saved.name, incoming)
        incoming.chmod(0o600)
        os.replace(incoming, data_dir / saved.name)
    return aside


def _check(source: Path, saved: SavedFile) -> None:
    path = source / saved.name
    if saved.name not in ALL_FILES:
        raise BackupError(f"{source} holds {saved.name}, which is not a June store")
    if not path.is_file():
        raise BackupError(f"{path} is missing from the backup")
    if sha256(path) != saved.sha256:
        raise BackupError(f"{path} is not the file that was backed up (its sha256 differs): the backup is damaged")
    _checked_version(path)


def _checked_version(path: Path) -> int:
    """The file's schema version, after SQLite's integrity check; a file newer than this June is refused."""
    try:
        problems, version = inspect(path)
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a readable SQLite database ({error})") from None
    if problems != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(problems[:3])}")
    if version > ALL_FILES[path.name].version:
        raise BackupError(f"{path} is at schema version {version}, newer than this June reads "
                          f"({ALL_FILES[path.name].version}): restore it with the June that took it")
    return version


def _processes_holding(data_dir: Path) -> list[str]:
    """The processes (`name[pid]`) that have one of the data dir's stores open."""
    stores = {str((data_dir / name).resolve()) for name in ALL_FILES}
    stores |= {f"{store}-wal" for store in stores}
    holders = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if any(opened.path in stores for opened in process.open_files()):
                holders.append(f"{process.info['name']}[{process.info['pid']}]")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return holders


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="june", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("backup", help="copy every store into DIR (new or empty), while June runs")
    take.add_argument("folder", type=Path, metavar="DIR")
    put = commands.add_parser("restore", help="replace the stores with the backup in DIR (June stopped)")
    put.add_argument("folder", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    if (settings := load_settings(JuneSettings, "june")) is None:
        return INVALID_SETTINGS
    data_dir = settings.data_dir
    try:
        if args.command == "backup":
            manifest = backup(data_dir, args.folder)
            print(f"backed up {', '.join(f'{f.name} (v{f.version})' for f in manifest.files)} into {args.folder}")
        else:
            aside = restore(args.folder, data_dir)
            print(f"restored {args.folder} into {data_dir}; the stores that were there are in {aside}")
    except (BackupError, OSError) as error:
        print(f"june: {error}", file=sys.stderr)
        return 1
    return 0
