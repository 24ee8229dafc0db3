"""`june prepare` readies the embedded models; `june serve` runs the graph; `june url` prints the page's address
with the owner key; `june history` reads the bots' log; `june backup` and `june restore` keep the stores safe."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from api.schemas import ID_PATTERN
from common.owner_key import page_url, read_owner_key
from common.private_files import private_dir
from common.cli_settings import INVALID_SETTINGS, load_settings
from common.settings import JuneSettings
from graphs.launch import deploy, start_ray, stop
from graphs.profiles import ProfileError, load_profile, profile_path
from llm.build import BuildError, ensure_server
from models.embedded import ModelNotFound, ModelTooLargeForCpu, resolve_piper_voice, resolve_whisper
from models.language_model import choose_engine, resolve_language_model
from models.moonshine import resolve_moonshine
from speech.transcriber import choose_engine as choose_stt_engine

log = logging.getLogger("june")


def checked_profile(profile: str) -> Path:
    load_profile(profile)  # raises ProfileError with the reason
    return profile_path(profile)


def speech_model(settings: JuneSettings) -> Path | str:
    if settings.tts_backend == "nemo":
        from speech.nemo import SPECTROGRAM_SETTING, VOCODER_SETTING, checkpoint_path

        spectrogram = checkpoint_path(settings.tts_nemo_spectrogram, SPECTROGRAM_SETTING, "FastPitch")
        vocoder = checkpoint_path(settings.tts_nemo_vocoder, VOCODER_SETTING, "HiFi-GAN")
        return f"{spectrogram} + {vocoder}"
    return resolve_piper_voice(settings.tts_voice)


def speech_to_text(settings: JuneSettings) -> Path:
    if choose_stt_engine(settings) == "moonshine":
        return resolve_moonshine(settings.stt_moonshine_model).encoder.parent
    return resolve_whisper(settings.stt_model, settings.models_dir)


def language_model(settings: JuneSettings) -> str:
    facts = resolve_language_model(settings)
    return f"{facts.path} on {facts.engine}"


def llama_server(settings: JuneSettings) -> str:
    build = ensure_server(settings.llama_build_dir, settings.llama_server)
    return str(build.binary) + (f" (built in {build.build_seconds:.0f} s)" if build.build_seconds else "")


def prepare(settings: JuneSettings) -> None:
    """Resolve (and join, convert or build once) every configured model and engine; idempotent."""
    steps = [
        ("placement profile", lambda: checked_profile(settings.profile)),
        ("speech-to-text", lambda: speech_to_text(settings)),
        ("language model", lambda: language_model(settings)),
        ("text-to-speech", lambda: speech_model(settings)),
    ]
    if choose_engine(settings) == "llama.cpp":
        steps.insert(3, ("llama.cpp server", lambda: llama_server(settings)))
    for number, (role, resolve) in enumerate(steps, 1):
        label = f"[{number}/{len(steps)}] {role}: "
        started = time.perf_counter()
        with _progress_lines(label):
            path = resolve()
        print(f"{label}{path} ({time.perf_counter() - started:.1f} s)", flush=True)


PROGRESS_LOGGERS = ("models.embedded", "models.language_model", "llm.build")


@contextmanager
def _progress_lines(label: str) -> Iterator[None]:
    """Show the models' and the build's progress (joining, converting, compiling: minutes) as plain lines on
    stderr under the step's label; the root handler that importing Ray installs would print JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(label.replace("%", "%%") + "%(message)s"))
    loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def new_key(name: str, users: list[str], admin: bool) -> str:
    """A fresh client key, and the keys-file entry that names only its sha256 (the key is shown once)."""
    if not re.fullmatch(ID_PATTERN, name):
        raise ValueError(f"client name {name!r}: letters, digits and . _ : @ - only")
    key = secrets.token_urlsafe(32)
    entry = (f'[clients.{name}]\nkey_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
             f"users = {json.dumps(users)}\n" + ("admin = true\n" if admin else ""))
    return (f"key for {name} (give it to that client; it is not stored anywhere): {key}\n\n"
            f"add to your JUNE_API_KEYS_FILE:\n\n{entry}")


def page_address(settings: JuneSettings) -> str:
    """The page's URL with the owner's key (JUNE_API_KEY, else the owner key) in its fragment."""
    url = f"http://{settings.host}:{settings.port}"
    if settings.api_key is not None:
        return page_url(url, settings.api_key.get_secret_value())
    if settings.api_keys_file is not None or settings.auth == "none":
        return f"{url}/"  # the page asks for a key of the keys file, or needs none
    key = read_owner_key(settings.data_dir)
    if key is None:
        raise ValueError(f"there is no owner key this user can read in {settings.data_dir}: start June first "
                         "(june serve), as the user that runs it")
    return page_url(url, key)


def serve_forever(settings: JuneSettings) -> None:
    from api.callers import Keys  # here: it imports Ray, which the other commands and --help do not need

    private_dir(settings.data_dir)
    keys = Keys.from_settings(settings)  # a broken or readable keys file stops us here, not in a replica
    if keys.owner_key is not None and keys.owner_key.created:
        print(f"made the owner key {keys.owner_key.path} (to rotate it: delete the file and restart)", flush=True)
    prepare(settings)
    print(f"starting Ray; its dashboard will be on http://127.0.0.1:{settings.dashboard_port}", flush=True)
    start_ray(dashboard_port=settings.dashboard_port)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print("deploying the graph ...", flush=True)
        url = deploy(settings)
        print(f"June is ready on {url}", flush=True)
        if keys.owner_key is not None:  # the page keeps the key from the fragment, then drops it from the address
            print(f"open the page with its key: {page_url(url, keys.owner_key.value)}", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        print("shutting down ...", flush=True)
        stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["history"]:  # the bots' command, with its own options and settings
        from bots.history_cli import main as history

        return history(argv[1:])
    if argv[:1] == ["inbox"]:  # the owner's inbox, through the graph's API
        from bots.inbox_cli import main as inbox

        return inbox(argv[1:])
    if argv[:1] in (["backup"], ["restore"]):  # the stores, copied while June runs and put back while it does not
        from graphs.backup import main as backup

        return backup(argv)
    parser = argparse.ArgumentParser(prog="june", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="resolve the configured models and build the llama.cpp server (once)")
    commands.add_parser("serve", help="run the graph in the foreground until Ctrl-C")
    commands.add_parser("url", help="the page's address with the owner key (or JUNE_API_KEY) in it")
    commands.add_parser("history", help="the bots' message history (june history --help)")
    commands.add_parser("inbox", help="the owner's inbox: june inbox list|show|reply (june inbox --help)")
    commands.add_parser("backup", help="june backup DIR: every store copied into DIR, while June runs")
    commands.add_parser("restore", help="june restore DIR: the stores replaced by the backup in DIR (June stopped)")
    key = commands.add_parser("key", help="make an API key for a client (printed once, with its keys-file entry)")
    key.add_argument("name", help="the client's name, e.g. telegram")
    key.add_argument("--users", action="append", required=True,
                     help="user ids it may act for, as patterns: 'telegram:*' (repeatable; '*' is everyone)")
    key.add_argument("--admin", action="store_true", help="may use the owner's routes")
    args = parser.parse_args(argv)
    if args.command == "key":
        try:
            print(new_key(args.name, args.users, args.admin))
        except ValueError as error:
            print(f"june: {error}", file=sys.stderr)
            return 2
        return 0
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if (settings := load_settings(JuneSettings, "june")) is None:
        return INVALID_SETTINGS
    try:
        if args.command == "prepare":
            prepare(settings)
        elif args.command == "url":
            print(page_address(settings))
        else:
            serve_forever(settings)
    except (ModelNotFound, ModelTooLargeForCpu, BuildError, ProfileError, TimeoutError, OSError,
            ValueError) as error:
        print(f"\njune: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
