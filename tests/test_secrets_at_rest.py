"""Secrets at rest, without a graph: the owner key file, the data dir, keys files and .env files of tokens, Ray's
token, and the `june`/bot commands that refuse to start over a file other users can read."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from api.callers import Keys
from bots.settings import BotSettings, TelegramSettings
from common.owner_key import OwnerKeyError, ensure_owner_key, owner_key_path, page_url, read_owner_key
from common.private_files import ReadableSecret, private_dir, protect_ray_token
from common.settings import JuneSettings
from tests.secret_files import private_file

REPO = Path(__file__).resolve().parents[1]
TELEGRAM_TOKEN = "123456:" + "A" * 35
OTHER_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]  # `nobody`, as root can become it
READ = ("import sys\ntry:\n    open(sys.argv[1]).read()\nexcept PermissionError:\n    print('refused')\n"
        "else:\n    print('read')")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def settings(data_dir: Path, **values) -> JuneSettings:
    return JuneSettings(_env_file=None, data_dir=data_dir, **values)


@pytest.fixture()
def open_folder() -> Iterator[Path]:
    """A folder any user may enter (unlike pytest's 0700 tmp_path), to show that the files' own modes keep others
    out."""
    folder = Path(tempfile.mkdtemp(prefix="june-secrets-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_the_first_start_makes_a_private_owner_key_and_later_ones_read_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "june"
    made = ensure_owner_key(data_dir)
    assert made.created and made.path == owner_key_path(data_dir) and len(made.value) >= 43
    assert mode(data_dir) == 0o700 and mode(made.path) == 0o600
    assert made.value not in repr(made)
    again = ensure_owner_key(data_dir)
    assert not again.created and again.value == made.value == read_owner_key(data_dir)
    assert [p.name for p in data_dir.iterdir()] == ["owner.key"]  # no draft left behind
    assert page_url("http://127.0.0.1:8000", made.value) == f"http://127.0.0.1:8000/#key={made.value}"


def test_replicas_starting_at_once_end_with_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(16) as pool:
        keys = list(pool.map(lambda _: ensure_owner_key(tmp_path / "june"), range(64)))
    assert len({key.value for key in keys}) == 1 and sum(key.created for key in keys) == 1
    assert sorted(p.name for p in (tmp_path / "june").iterdir()) == ["owner.key"]


def test_an_open_data_dir_is_tightened_and_an_open_key_file_too(tmp_path: Path, caplog) -> None:
    data_dir = tmp_path / "june"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        key = ensure_owner_key(data_dir)
    assert mode(data_dir) == 0o700 and "now 0700" in caplog.text
    key.path.chmod(0o644)
    assert read_owner_key(data_dir) == key.value and mode(key.path) == 0o600
    assert key.value not in caplog.text


@pytest.mark.parametrize("content", ["", "short", "x" * 300, "spaces in the key are no key at all", "\x00" * 40])
def test_a_damaged_owner_key_file_is_named_not_used(tmp_path: Path, content: str) -> None:
    data_dir = private_dir(tmp_path / "june")
    private_file(owner_key_path(data_dir), content)
    with pytest.raises(OwnerKeyError, match="owner.key .*delete it and start June again"):
        ensure_owner_key(data_dir)
    assert read_owner_key(data_dir) is None  # a client then sends no key, and June's 401 says what is wanted


def test_a_symbolic_link_is_not_taken_for_the_key(tmp_path: Path) -> None:
    data_dir = private_dir(tmp_path / "june")
    elsewhere = private_file(tmp_path / "elsewhere", "k" * 43)
    owner_key_path(data_dir).symlink_to(elsewhere)
    with pytest.raises(OwnerKeyError, match="symbolic link"):
        ensure_owner_key(data_dir)


def test_without_a_configured_key_the_owner_key_is_the_owner(tmp_path: Path) -> None:
    keys = Keys.from_settings(settings(tmp_path / "june"))
    owner = keys.caller(read_owner_key(tmp_path / "june"))
    assert keys.required and not keys.configured and keys.owner_key is not None
    assert owner.name == owner.default_user == "owner" and owner.admin and owner.may_act_for("web:1")
    for hostile in ("", " ", "x" * 10_000, "ÿ" * 43, keys.owner_key.value + " ", keys.owner_key.value[:-1]):
        assert keys.caller(hostile) is None


def test_june_auth_none_is_open_and_says_so(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="june.keys"):
        keys = Keys.from_settings(settings(tmp_path / "june", auth="none"))
    assert not keys.required and not (tmp_path / "june" / "owner.key").exists()
    assert "any user of this machine can act as the owner" in caplog.text


def test_a_keys_file_others_can_read_is_refused_or_with_the_flag_warned_about(tmp_path: Path, caplog) -> None:
    key = "k" * 40
    path = tmp_path / "keys.toml"
    path.write_text(f'[clients.owner]\nkey = "{key}"\nusers = ["*"]\nadmin = true\n')
    path.chmod(0o640)
    with pytest.raises(ReadableSecret) as refused:
        Keys.from_settings(settings(tmp_path, api_keys_file=path))
    assert f"chmod 600 {path}" in str(refused.value) and "JUNE_ALLOW_READABLE_SECRETS" in str(refused.value)
    assert key not in str(refused.value)
    with caplog.at_level(logging.WARNING):
        keys = Keys.from_settings(settings(tmp_path, api_keys_file=path, allow_readable_secrets=True))
    assert keys.caller(key) is not None and "can be read by other users" in caplog.text
    path.chmod(0o600)
    assert Keys.from_settings(settings(tmp_path, api_keys_file=path)).caller(key) is not None


@pytest.mark.parametrize("make_settings", [
    lambda: JuneSettings(), lambda: BotSettings(), lambda: TelegramSettings(telegram_token=TELEGRAM_TOKEN),
], ids=["june", "bots", "telegram"])
def test_a_dot_env_of_tokens_others_can_read_is_refused(tmp_path: Path, monkeypatch, caplog, make_settings) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUNE_DATA_DIR", str(tmp_path / "data"))
    env = tmp_path / ".env"
    env.write_text(f"JUNE_PORT=8001\nJUNE_TELEGRAM_TOKEN={TELEGRAM_TOKEN}\n")
    env.chmod(0o644)
    with pytest.raises(ReadableSecret) as refused:
        make_settings()
    assert f"chmod 600 {env}" in str(refused.value) and TELEGRAM_TOKEN not in str(refused.value)
    monkeypatch.setenv("JUNE_ALLOW_READABLE_SECRETS", "true")
    with caplog.at_level(logging.WARNING):
        make_settings()
    assert "can be read by other users" in caplog.text and TELEGRAM_TOKEN not in caplog.text
    monkeypatch.delenv("JUNE_ALLOW_READABLE_SECRETS")
    env.chmod(0o600)
    make_settings()
    env.write_text("JUNE_PORT=8001\nJUNE_STT_MODEL=tiny.en\n")  # nothing secret: its mode is no one's business
    env.chmod(0o644)
    make_settings()


def test_the_bots_read_the_owner_key_when_given_none(tmp_path: Path) -> None:
    key = ensure_owner_key(tmp_path / "june").value
    assert BotSettings(_env_file=None, data_dir=tmp_path / "june").api_key.get_secret_value() == key
    given = BotSettings(_env_file=None, data_dir=tmp_path / "june", api_key=SecretStr("mine-" + "m" * 30))
    assert given.api_key.get_secret_value() == "mine-" + "m" * 30
    assert BotSettings(_env_file=None, data_dir=tmp_path / "empty").api_key is None
    assert settings(tmp_path / "june").client_headers == {"Authorization": f"Bearer {key}"}


def test_rays_token_is_made_the_owners_alone(tmp_path: Path, monkeypatch) -> None:
    token = tmp_path / "ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("t" * 32)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert protect_ray_token() == token and mode(token) == 0o600
    token.unlink()
    assert protect_ray_token() is None  # Ray's token auth is off: nothing to protect


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user")
def test_another_local_user_cannot_read_the_owner_key(open_folder: Path) -> None:
    data_dir = open_folder / "june"
    key = ensure_owner_key(data_dir)
    data_dir.chmod(0o711)  # even with the data dir opened up, the file's own mode keeps them out
    other = subprocess.run([*OTHER_USER, sys.executable, "-c", READ, str(key.path)], capture_output=True, text=True,
                           timeout=60)
    assert other.stdout.strip() == "refused", other
    assert read_owner_key(data_dir) == key.value  # the owner still can


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder of another user's")
def test_an_open_data_dir_of_another_user_is_refused(open_folder: Path) -> None:
    theirs = open_folder / "theirs"
    theirs.mkdir()
    theirs.chmod(0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ReadableSecret, match="belongs to another user"):
        private_dir(theirs)


def june(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=environment,
                          timeout=300)


def test_june_serve_and_the_bots_refuse_to_start_over_readable_secrets(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[clients.owner]\nkey = "{"k" * 40}"\nusers = ["*"]\n')
    keys.chmod(0o644)
    served = june("graphs.cli", "serve", cwd=tmp_path, JUNE_API_KEYS_FILE=str(keys), JUNE_DATA_DIR=str(tmp_path / "d"))
    assert served.returncode == 1 and f"chmod 600 {keys}" in served.stderr and "k" * 40 not in served.stderr
    assert "starting Ray" not in served.stdout and "Traceback" not in served.stderr

    (tmp_path / ".env").write_text(f"JUNE_TELEGRAM_TOKEN={TELEGRAM_TOKEN}\n")
    (tmp_path / ".env").chmod(0o604)
    for command in (("graphs.cli", "serve"), ("bots.telegram",), ("bots.history_cli",)):
        refused = june(*command, cwd=tmp_path, JUNE_DATA_DIR=str(tmp_path / "d"))
        assert refused.returncode in (1, 2), (command, refused.stderr)
        assert "the .env file" in refused.stderr and "chmod 600" in refused.stderr, command
        assert TELEGRAM_TOKEN not in refused.stderr + refused.stdout and "Traceback" not in refused.stderr, command


def test_june_url_prints_the_page_with_the_owner_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "june"
    missing = june("graphs.cli", "url", cwd=tmp_path, JUNE_DATA_DIR=str(data_dir), JUNE_PORT="8123")
    assert missing.returncode == 1 and "start June first" in missing.stderr
    key = ensure_owner_key(data_dir).value
    printed = june("graphs.cli", "url", cwd=tmp_path, JUNE_DATA_DIR=str(data_dir), JUNE_PORT="8123")
    assert printed.returncode == 0 and printed.stdout.strip() == f"http://127.0.0.1:8123/#key={key}"
    open_june = june("graphs.cli", "url", cwd=tmp_path, JUNE_DATA_DIR=str(data_dir), JUNE_AUTH="none")
    assert open_june.stdout.strip() == "http://127.0.0.1:8000/"
