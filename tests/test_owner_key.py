"""A key by default, on the session's real graph: without JUNE_API_KEY(S_FILE) the Ingress made the owner key in
the data dir, and nothing but the probes and the page is served without it; other local users can read neither
it nor Ray's token, and Ray's dashboard and job API refuse them."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.owner_key import owner_key_path
from common.private_files import ray_token_path
from tests.live_api import agent_handle, live_api

REPO = Path(__file__).resolve().parents[1]
OTHER_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]  # `nobody`, as root can become it
GUARDED = [("GET", "/v1/status"), ("GET", "/v1/conversations"), ("GET", "/v1/messages"), ("GET", "/v1/inbox"),
           ("GET", "/v1/users/owner/export"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/v1/models"),
           ("POST", "/v1/chat"), ("POST", "/v1/chat/completions"), ("DELETE", "/v1/users/owner"),
           ("GET", "/v1/no-such-route")]
# A dashboard, in a Ray instance of its own started as `june serve` starts it (the session's Ray has none).
DASHBOARD = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from graphs.launch import free_port, start_ray
port = free_port()
start_ray(dashboard_port=port)
print(json.dumps({{"port": port}}), flush=True)
sys.stdin.readline()
import ray
ray.shutdown()
"""
GET = ("import sys, urllib.request, urllib.error\ntry:\n    urllib.request.urlopen(sys.argv[1], timeout=30)\n"
       "except urllib.error.HTTPError as error:\n    print(error.code)\nelse:\n    print(200)")
READ = ("import sys\ntry:\n    open(sys.argv[1]).read()\nexcept PermissionError:\n    print('refused')\n"
        "else:\n    print('read')")


def as_nobody(program: str, *args: str) -> str:
    return subprocess.run([*OTHER_USER, sys.executable, "-c", program, *args], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_without_the_key_nothing_but_the_probes_and_the_page_is_served(graph, method: str, path: str) -> None:
    response = httpx.request(method, f"{graph.url}{path}", json={"text": "hi"}, timeout=60)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"


def test_the_probes_and_the_page_need_no_key(graph) -> None:
    for path in ("/healthz", "/", "/web/june.js", "/web/june.css"):
        assert httpx.get(f"{graph.url}{path}", timeout=60).status_code == 200, path


@pytest.mark.parametrize("authorization", [
    "", "Bearer", "Bearer wrong", "Basic {key}", "bearer {key}x", "{key}", "Bearer {key} {key}",
    "Bearer " + "k" * 600, "Bearer " + "k" * 6000, "Bearer \u00ff\u00fe{key}", "Bearer ../../etc",
    "Bearer '; DROP TABLE turns;--", "Bearer %00",
])
def test_a_wrong_or_hostile_key_is_401_not_500(graph, authorization: str) -> None:
    value = authorization.replace("{key}", graph.key)
    response = httpx.post(f"{graph.url}/v1/chat", json={"text": "hi"}, timeout=60,
                          headers={"Authorization": value.encode("latin-1")})
    assert response.status_code == 401, response.text
    assert graph.key not in response.text


def test_the_owner_key_is_accepted_and_acts_as_the_owner(graph) -> None:
    response = httpx.post(f"{graph.url}/v1/chat", headers=graph.headers, timeout=120,
                          json={"text": "Hello!", "conversation_id": "owner-default"})
    assert response.status_code == 200, response.text
    assert len(agent_handle().history.remote("owner", "owner-default").result()) == 2  # not the shared 'anonymous'
    bare = httpx.get(f"{graph.url}/v1/status", headers={"Authorization": f"bearer {graph.key}"}, timeout=60)
    assert bare.status_code == 200  # the scheme's case does not matter


def test_the_key_file_is_the_owners_alone(graph) -> None:
    data_dir = graph.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    key_file = owner_key_path(data_dir)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_uid == os.geteuid()


def test_june_auth_none_is_the_open_loopback_service_and_warns(graph, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="june.keys"), live_api(graph.settings, auth="none") as url:
        opened = httpx.get(f"{url}/v1/status", timeout=60)
        rebound = httpx.get(f"{url}/v1/status", headers={"Host": "rebind.attacker.example"}, timeout=60)
    assert opened.status_code == 200 and rebound.status_code == 403
    assert "any user of this machine can act as the owner" in caplog.text


def test_the_inbox_command_reads_the_owner_key(graph) -> None:
    env = {**os.environ, "JUNE_API_URL": graph.url, "JUNE_DATA_DIR": str(graph.settings.data_dir)}
    env.pop("JUNE_API_KEY", None)
    listed = subprocess.run([sys.executable, "-m", "graphs.cli", "inbox", "list"], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert graph.key not in listed.stdout + listed.stderr


def test_rays_token_is_private_once_ray_started(graph) -> None:
    token = ray_token_path()
    if not token.exists():
        pytest.skip("Ray's token authentication is off here (RAY_AUTH_MODE=disabled)")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    if token.parent == Path.home() / ".ray":
        assert not token.parent.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@pytest.fixture(scope="module")
def dashboard() -> Iterator[str]:
    """The URL of a Ray dashboard with token authentication, as `june serve` starts it."""
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    ray = subprocess.Popen([sys.executable, "-c", DASHBOARD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    try:
        line = ray.stdout.readline()
        assert line, "the Ray instance with a dashboard did not start"
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        ray.stdin.close()  # it shuts its Ray down
        try:
            ray.wait(60)
        except subprocess.TimeoutExpired:
            ray.kill()
            ray.wait(10)


def test_the_dashboard_and_job_api_want_rays_token(dashboard: str) -> None:
    token = ray_token_path().read_text().strip()
    for path in ("/api/jobs/", "/api/version", "/api/serve/applications/"):
        assert httpx.get(f"{dashboard}{path}", timeout=30).status_code == 401, path
        assert httpx.get(f"{dashboard}{path}", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).status_code == 200, path
    assert stat.S_IMODE(ray_token_path().stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user")
def test_another_local_user_reads_no_key_and_gets_nothing_from_ray(graph, dashboard: str) -> None:
    assert as_nobody(READ, str(owner_key_path(graph.settings.data_dir))) == "refused"
    assert as_nobody(READ, str(ray_token_path())) == "refused"
    assert as_nobody(GET, f"{dashboard}/api/jobs/") == "401"
    assert as_nobody(GET, f"{graph.url}/v1/conversations?user_id=owner") == "401"
