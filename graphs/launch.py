"""Start Ray and the June graph in this process, with a time limit on every wait."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

from common.private_files import protect_ray_token
from common.settings import JuneSettings

APP_NAME = "june"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}


def start_ray(*, dashboard_port: int | None = None) -> None:
    """A new local Ray instance (never an existing cluster), dashboard on 127.0.0.1 if a port is given.

    Ray turns its token auth on for a new instance (unless RAY_AUTH_MODE says otherwise) and writes the token
    0644 to ~/.ray/auth_token the first time: it is made 0600 here, so other users of this machine can use
    neither the dashboard nor the job API."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():  # e.g. started implicitly by building a deployment in this process
        ray.shutdown()
    ray.init(
        address="local",
        include_dashboard=dashboard_port is not None,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        log_to_driver=False,
    )
    protect_ray_token()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deploy(settings: JuneSettings, *, access_log: bool = True) -> str:
    """Deploy the graph on the running Ray instance; return its URL once /healthz says ok."""
    from ray import serve

    from graphs.voice import build_app

    logging_config = {"enable_access_log": access_log, "encoding": "JSON"}
    serve.start(
        proxy_location="HeadOnly",
        http_options={"host": settings.host, "port": settings.port},
        logging_config=logging_config,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve.run(build_app(settings), name=APP_NAME, route_prefix="/", logging_config=logging_config)
        except BaseException as error:  # reported to the caller below
            failure.append(error)

    started = time.monotonic()
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(settings.startup_timeout_s)
    if failure:
        raise RuntimeError(f"{failure[0]}\n{deployment_problems()}") from failure[0]
    if runner.is_alive():
        raise TimeoutError(f"the graph did not deploy in {settings.startup_timeout_s:.0f} s: {serve.status()}")
    url = f"http://{settings.host}:{settings.port}"
    wait_until_healthy(url, settings.startup_timeout_s - (time.monotonic() - started))
    return url


def deployment_problems(app_name: str = APP_NAME) -> str:
    """What Serve says about each deployment that is not healthy (a replica's exception, mostly)."""
    from ray import serve

    application = serve.status().applications.get(app_name)
    if application is None:
        return "the application is not known to Serve"
    return "\n".join(f"{name}: {deployment.message}" for name, deployment in application.deployments.items()
                     if deployment.status != "HEALTHY" and deployment.message)


def wait_until_healthy(url: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + max(timeout_s, 5.0)
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                body = json.load(response)
                if body.get("status") == "ok":
                    return body
                last_error = json.dumps(body)
        except (urllib.error.URLError, OSError, ValueError) as error:
            last_error = str(error)
        time.sleep(0.5)
    raise TimeoutError(f"June did not become healthy in {timeout_s:.0f} s: {last_error}")


def stop() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
